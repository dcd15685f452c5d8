with builtins; [ (sort lessThan [ 3 1 2 5 4 ]) (sort (a: b: a > b) [ 3 1 2 ]) (sort lessThan [ ]) (sort lessThan [ "b" "a" "c" ]) ]
