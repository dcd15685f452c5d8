builtins.typeOf (./lib + "x")
