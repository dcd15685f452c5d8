builtins.catAttrs "a" [ { a = 1; } "b" ]
