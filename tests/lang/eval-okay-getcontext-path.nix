builtins.getContext "${./lib/data.txt}"
