builtins.attrValues (builtins.readDir ./lib/dir)
