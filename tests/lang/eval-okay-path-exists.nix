[ (builtins.pathExists ./lib) (builtins.pathExists ./lib/data.txt) (builtins.pathExists ./does-not-exist) (builtins.pathExists (./lib + "/sub/value.nix")) ]
