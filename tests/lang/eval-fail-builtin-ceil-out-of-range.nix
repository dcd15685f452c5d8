builtins.ceil (-1.0e19)
