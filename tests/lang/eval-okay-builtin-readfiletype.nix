with builtins; [ (readFileType ./lib/data.txt) (readFileType ./lib/dir) (readFileType ./lib/dir/link-to-a) ]
