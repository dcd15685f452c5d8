[ {} { } (builtins.attrNames {}) ]
