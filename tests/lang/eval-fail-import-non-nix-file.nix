import ./lib/dir/file-a
