builtins.sort (a: b: a < b) [ [ 2 1 ] [ 1 2 ] [ 1 ] [ ] [ 1 1 5 ] ]
