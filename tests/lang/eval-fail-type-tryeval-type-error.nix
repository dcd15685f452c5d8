builtins.tryEval (builtins.head 1)
