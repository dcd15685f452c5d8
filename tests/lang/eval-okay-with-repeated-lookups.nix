# One `with`-bound name used again and again: under one scope it is the same
# value each time, under a new scope (a new call, a new set) it is looked up
# afresh, also when the inner `with` set lacks it and an outer one has it.
let
  outer = { shared = "outer"; pick = "outer-pick"; };
  viaInner = inner: with outer; with inner; [ shared pick ];
  perCall = s: with s; value;
  counter = n: with { inherit n; extra = "outer"; }; with (if n > 1 then { extra = n * 10; } else { }); [ n extra ];
  nested = s: with s; map (t: with t; [ a b ]) [ { a = 1; } { a = 2; b = "local"; } { a = 3; } ];
in {
  inner = map viaInner [ { } { pick = "inner"; } { shared = "s"; } { } ];
  calls = map perCall [ { value = 1; } { value = 2; } { value = 1; } ];
  loop = builtins.genList (i: counter i) 4;
  nested = nested { b = "from-s"; a = 0; };
  nested2 = nested { b = "other"; };
  lazy = let f = s: with s; x; in [ (f { x = 1; }) (f (builtins.listToAttrs [ { name = "x"; value = 2; } ])) (f { x = 1; }) ];
}
