# baseNameOf coerces its argument.
builtins.baseNameOf [ ]
