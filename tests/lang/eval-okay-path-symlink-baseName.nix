baseNameOf ./lib/dir/link-to-a
