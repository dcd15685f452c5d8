builtins.all (x: 1) [ 1 ]
