builtins.sort 1 [ 2 ]
