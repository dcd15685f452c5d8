builtins.toJSON { list = [ [ ] [ [ ] ] { } ]; obj = { nested = { deep = [ 1 ]; }; }; str = "x"; }
