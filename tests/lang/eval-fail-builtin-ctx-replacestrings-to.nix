# a replacement of replaceStrings, forced only when its pattern matches.
builtins.replaceStrings [ "x" "b" ] [ 1 2 ] "abc"
