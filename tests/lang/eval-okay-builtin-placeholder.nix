map builtins.placeholder [ "out" "dev" "bin" ]
