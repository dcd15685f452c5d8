# Selections and formals remember where the last set had the name; sets of
# other layouts (more or fewer attributes, the name in a lower layer of `//`,
# the name missing) must still find the right attribute each time.
let
  big = { p = 1; q = 2; r = 3; s = 4; t = 5; a = "big"; };
  sets = [
    { a = 1; }
    { b = 0; a = 2; }
    { a = 3; b = 4; c = 5; }
    (big // { z = 6; })
    (big // { a = "top"; })
    ({ x = 1; y = 2; z = 3; w = 4; } // { a = 7; })
    { b = 9; }
  ];
  pick = s: s.a or "none";
  f = { a, b ? "default-b", ... }: [ a b ];
  g = i: { a, c ? i, ... }: a + c;
  callWith = s: if s ? a then f s else "skipped";
  argsOf = builtins.map (i: builtins.functionArgs (g i)) [ 1 2 3 ];
in {
  picked = map pick (sets ++ sets);
  called = map callWith (sets ++ sets);
  summed = map (i: g i { a = i * 10; }) [ 1 2 3 ] ++ map (i: g i { c = 1; a = i; x = 0; }) [ 4 5 ];
  inherit argsOf;
  sameArgs = builtins.elemAt argsOf 0 == builtins.elemAt argsOf 2;
  argPos = map (x: (builtins.unsafeGetAttrPos "c" x).column) argsOf;
}
