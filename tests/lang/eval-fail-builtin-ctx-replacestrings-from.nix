# a pattern of replaceStrings.
builtins.replaceStrings [ 1 ] [ "b" ] "abc"
