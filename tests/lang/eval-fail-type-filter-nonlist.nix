builtins.filter (x: true) "a"
