let s = { a = { "b c" = { d = 1; }; }; }; k = "b c"; in [ (s ? a.${k}.d) (s ? a.${k}.e) (s ? a."b c") ]
