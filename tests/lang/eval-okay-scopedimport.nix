builtins.scopedImport { extra = "scoped"; } ./lib/uses-free-var.nix
