builtins.readDir ./lib/data.txt
