builtins.toJSON ./lib/data.txt
