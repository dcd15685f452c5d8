(import ./lib/id.nix) == (import ./lib/id.nix)
