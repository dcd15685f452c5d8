(builtins.tryEval { }.x).success
