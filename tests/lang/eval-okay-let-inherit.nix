let
  s = { p = 1; q = 2; r = 3; };
  inherit (s) p q;
  z = 10;
in let inherit z; in [ p q z ]
