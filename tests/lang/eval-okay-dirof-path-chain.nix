baseNameOf (dirOf (dirOf ./lib/sub/value.nix))
