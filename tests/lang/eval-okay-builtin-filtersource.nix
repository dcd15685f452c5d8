builtins.filterSource (path: type: type != "symlink") ./lib/dir
