builtins.readDir ./no-such-directory
