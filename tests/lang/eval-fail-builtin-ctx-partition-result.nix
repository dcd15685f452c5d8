# partition's predicate must return a Boolean.
builtins.partition (x: null) [ 1 ]
