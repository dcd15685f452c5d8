# an element of args.
builtins.derivationStrict { name = "a"; system = "x"; builder = "b"; args = [ "c" { } ]; }
