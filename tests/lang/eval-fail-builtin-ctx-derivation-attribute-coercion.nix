# an attribute that cannot be coerced names the derivation and the attribute.
builtins.derivationStrict { name = "a"; system = "x"; builder = { }; }
