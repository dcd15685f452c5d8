with builtins; [ (filter (x: x > 2) [ 1 2 3 4 ]) (filter (x: true) [ ]) (filter isString [ 1 "a" 2 "b" ]) ]
