# groupBy's function must return a string.
builtins.groupBy (x: x) [ "a" 1 ]
