(builtins.tryEval (builtins.fromJSON "{")).success
