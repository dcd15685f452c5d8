let builtins = { }; in builtins.x or 1
