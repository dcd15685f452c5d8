builtins.scopedImport { import = x: "overridden import of ${baseNameOf x}"; } ./lib/uses-import.nix
