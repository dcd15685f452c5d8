toString { type = "derivation"; outPath = "/nix/store/abc-x"; }
