[ (baseNameOf (builtins.findFile [ { prefix = "l"; path = ./lib; } ] "l/sub/value.nix")) (baseNameOf (builtins.findFile [ { prefix = ""; path = ./lib; } ] "id.nix")) ]
