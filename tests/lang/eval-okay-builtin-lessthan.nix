with builtins; [ (lessThan 1 2) (lessThan "a" "b") (lessThan [ 1 ] [ 2 ]) (lessThan 2.5 2) ]
