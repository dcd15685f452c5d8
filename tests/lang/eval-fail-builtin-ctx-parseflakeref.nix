# parseFlakeRef takes a string.
builtins.parseFlakeRef 1
