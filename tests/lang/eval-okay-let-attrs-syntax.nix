let
  a.b = 1;
  a.c = 2;
  d = { e = 3; };
in [ a.b a.c d.e (a // d) ]
