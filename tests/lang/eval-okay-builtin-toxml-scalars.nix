map builtins.toXML [ 1 "x" null true (x: x) [ ] ]
