builtins.typeOf (./lib + ./id.nix)
