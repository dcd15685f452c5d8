# outputs must be distinct.
builtins.derivationStrict { name = "a"; system = "x"; builder = "b"; outputs = [ "out" "out" ]; }
