import ./lib/no-such-file.nix
