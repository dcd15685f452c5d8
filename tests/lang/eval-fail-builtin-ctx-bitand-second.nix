# the second argument of bitAnd.
builtins.bitAnd 1 2.0
