import ./lib/broken.nix.txt
