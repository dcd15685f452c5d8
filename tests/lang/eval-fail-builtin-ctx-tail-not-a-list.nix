# tail names itself quoted.
builtins.tail { }
