# substring's string argument.
builtins.substring 0 2 { }
