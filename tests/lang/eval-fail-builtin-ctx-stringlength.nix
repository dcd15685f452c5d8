# stringLength coerces its argument.
builtins.stringLength { }
