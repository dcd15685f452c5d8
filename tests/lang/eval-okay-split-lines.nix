builtins.filter builtins.isString (builtins.split "\n" (builtins.readFile ./lib/data.txt))
