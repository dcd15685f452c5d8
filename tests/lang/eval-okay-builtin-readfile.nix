[ (builtins.readFile ./lib/data.txt) (builtins.readFile ./lib/dir/file-b.txt) ]
