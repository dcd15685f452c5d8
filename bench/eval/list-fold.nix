# Strict and lazy folds, map, filter and concatMap over long lists.
let
  xs = builtins.genList (i: i) 1000000;
  evens = builtins.filter (x: x / 2 * 2 == x) xs;
  pairs = builtins.concatMap (x: [ x (x + 1) ]) evens;
in builtins.foldl' (a: b: a + b) 0 (map (x: x * 3) pairs)
