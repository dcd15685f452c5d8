let
  s1 = { a = 1; };
  s2 = { b = 2; };
  b = 99;
in { inherit (s1) a; inherit (s2) b; c = b; }
