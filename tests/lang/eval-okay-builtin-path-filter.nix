builtins.path { path = ./lib/dir; name = "filtered"; filter = path: type: baseNameOf path != "subdir"; }
