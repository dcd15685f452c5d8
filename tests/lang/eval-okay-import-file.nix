import ./lib/sub/value.nix
