# match compiles the expression before it forces the string.
builtins.match "(" 1
