(import ./lib/id.nix) 42
