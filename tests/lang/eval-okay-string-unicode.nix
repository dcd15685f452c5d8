[ "ünïcödé" (builtins.stringLength "é") (builtins.stringLength "日本") (builtins.substring 0 1 "é") ]
