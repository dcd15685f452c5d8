with builtins; [ (add 3 4) (sub 3 4) (mul 3 4) (div 9 4) (div 9.0 4) (add 1 0.5) (lessThan 1 2) (lessThan 2.5 1) ]
