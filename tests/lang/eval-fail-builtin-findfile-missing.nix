builtins.findFile [ { prefix = "l"; path = ./lib; } ] "nope/x.nix"
