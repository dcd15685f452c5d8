builtins.readFile ./lib/dir
