builtins.readFile ./lib/dir/link-to-a
