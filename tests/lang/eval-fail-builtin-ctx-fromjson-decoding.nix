# a JSON parse error.
builtins.fromJSON "[1,"
