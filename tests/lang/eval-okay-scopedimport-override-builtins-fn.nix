builtins.scopedImport { map = f: l: "my map"; } ./lib/uses-builtins.nix
