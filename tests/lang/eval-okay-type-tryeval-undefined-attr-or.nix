(builtins.tryEval ({ }.a or (throw "x"))).success
