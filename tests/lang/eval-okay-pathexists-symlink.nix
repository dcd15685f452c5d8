builtins.pathExists ./lib/dir/link-to-a
