[ (builtins.hashFile "sha256" ./lib/data.txt) (builtins.hashFile "md5" ./lib/dir/file-b.txt) ]
