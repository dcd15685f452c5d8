[ (builtins.pathExists ./lib/dir) (builtins.pathExists (./lib + "/dir/")) (builtins.pathExists "/") ]
