builtins.seq (1 + "a") 2
