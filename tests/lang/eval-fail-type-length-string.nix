builtins.length "a"
