map builtins.typeOf [ 1 1.5 "s" true null ./p [ ] { } (x: x) builtins.add (builtins.add 1) { __functor = s: x: x; } ]
