builtins.match "line (.*)\n.*" (builtins.readFile ./lib/data.txt)
