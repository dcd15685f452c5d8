[ (builtins.substring 0 2 "日本") (builtins.stringLength (builtins.substring 0 3 "日本")) ]
