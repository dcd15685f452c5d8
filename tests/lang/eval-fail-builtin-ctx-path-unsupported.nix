# builtins.path refuses unknown attributes.
builtins.path { path = ./lib; flat = true; }
