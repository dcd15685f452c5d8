# fromJSON takes a string without context.
builtins.fromJSON "${builtins.toFile "x" "1"}"
