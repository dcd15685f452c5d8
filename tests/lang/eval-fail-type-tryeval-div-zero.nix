(builtins.tryEval (1 / 0)).success
