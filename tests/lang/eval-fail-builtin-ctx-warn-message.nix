# warn takes a string message.
builtins.warn 1 2
