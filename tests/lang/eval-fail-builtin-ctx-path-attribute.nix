# builtins.path names the attribute, at its position.
builtins.path { path = ./lib; recursive = "yes"; }
