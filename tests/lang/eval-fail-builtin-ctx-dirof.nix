# dirOf's frame quotes the builtin's name.
builtins.dirOf { }
