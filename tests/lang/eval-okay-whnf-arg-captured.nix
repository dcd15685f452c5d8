# A lambda's argument that is integer arithmetic on values (`f (n * 2)`) is
# an unevaluated argument until something forces it, however early an
# evaluator computes it: captured unforced into a list or a set, it prints as
# <CODE>. Each case is forced to its head only, as nix-instantiate --eval
# forces its result.
let
  heads = xs: builtins.seq (builtins.foldl' (acc: x: builtins.seq x acc) null xs) xs;
  n = 5;
  list = x: [ x ];
in
heads [
  (list (1 + 1))
  ((x: [ x ]) (2 * 3))
  (list (n * 2))
  (list (n - 1))
  (list (n / 2))
  (list (n == 5))
  (list (n != 5))
  (list (n < 5))
  ((x: { a = x; }) (1 + 1))
  ((x: { inherit x; }) (1 + 1))
  ((x: rec { inherit x; y = x; }) (3 * 4))
  ((x: let y = x; in [ y ]) (1 + 1))
  ((x: with { }; [ x ]) (1 + 1))
  ((x: with { a = x; }; [ a ]) (1 + 1))
  ((x: [ x x ]) (1 + 1))
  ((x: [ x (x + 1) ]) (10 - 1))
  ((x: { a = x; b = x + 1; }) (7 - 1))
  ((x: rec { a = x; b = a; }) (7 - 1))
  ((x: [ x ] ++ [ x ]) (1 + 1))
  ((x: { a = x; } // { b = x; }) (1 + 1))
  ((x: builtins.attrValues { a = x; }) (1 + 1))
  ((x: builtins.listToAttrs [ { name = "a"; value = x; } ]) (1 + 1))
  ((x: builtins.genList (i: x) 2) (1 + 1))
  ((x: builtins.tail [ 0 x ]) (1 + 1))
  ((x: builtins.concatLists [ [ x ] ]) (1 + 1))
]
