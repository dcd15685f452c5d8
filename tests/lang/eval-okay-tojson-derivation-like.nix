builtins.toJSON { type = "derivation"; outPath = "/nix/store/abc-x"; name = "x"; }
