builtins.readFile ./no-such-file-here
