builtins.readDir ./lib/nope
