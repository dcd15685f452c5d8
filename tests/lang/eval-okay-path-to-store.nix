[ "${./lib/data.txt}" "${./lib/dir}" (builtins.toString ./lib/data.txt == "${./lib/data.txt}") ]
