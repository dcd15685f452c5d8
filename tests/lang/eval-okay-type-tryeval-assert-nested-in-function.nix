(builtins.tryEval ((x: assert x; x) false)).success
