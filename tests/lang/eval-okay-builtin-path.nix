[ (builtins.path { path = ./lib/dir; }) (builtins.path { path = ./lib/data.txt; name = "renamed"; }) ]
