import ./sub/value.nix
