builtins.pathExists "lib"
