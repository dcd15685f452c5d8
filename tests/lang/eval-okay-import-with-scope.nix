let x = 1; in (import ./lib/id.nix) x
