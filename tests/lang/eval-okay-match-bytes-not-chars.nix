[ (builtins.match "(.)(.*)" "é") (builtins.match "..?" "é") (builtins.stringLength "é") ]
