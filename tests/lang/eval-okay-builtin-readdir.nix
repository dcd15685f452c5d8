[ (builtins.readDir ./lib/dir) (builtins.readDir ./lib/dir/subdir) ]
