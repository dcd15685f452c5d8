builtins.typeOf ("x" + ./lib/id.nix)
