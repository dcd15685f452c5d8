# replaceStrings takes a string, not a path.
builtins.replaceStrings [ "a" ] [ "b" ] ./lib
