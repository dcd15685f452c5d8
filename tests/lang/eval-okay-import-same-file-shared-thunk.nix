let a = import ./lib/sub/value.nix; b = import ./lib/sub/value.nix; in a == b
