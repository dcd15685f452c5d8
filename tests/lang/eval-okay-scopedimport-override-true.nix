builtins.scopedImport { true = "not a bool"; } ./lib/uses-builtins.nix
