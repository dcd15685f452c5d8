let
  a = derivation { name = "a"; builder = "/bin/sh"; system = "x86_64-linux"; };
  b = derivation { name = "b"; builder = "/bin/sh"; system = "x86_64-linux"; dep = a; flag = true; n = 3; none = null; list = [ "x" a 1 ]; };
in [ b.drvPath b.outPath ]
