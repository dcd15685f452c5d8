# A built-in given an argument of the wrong type.
builtins.attrNames [ 1 ]
