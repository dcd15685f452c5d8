# A function cannot be converted; the error is at the function.
builtins.toJSON { f = x: x; }
