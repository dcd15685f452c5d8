let l = import ./lib/minilib.nix; in [
  (l.foldr (a: b: [ a ] ++ b) [ ] [ 1 2 3 ]) (l.range 3 7) (l.range 5 1) (l.reverseList [ 1 2 3 ])
  (l.unique [ 1 2 1 3 2 ]) (l.flatten [ 1 [ 2 [ 3 [ ] ] ] 4 ]) (l.take 2 [ "a" "b" "c" ]) (l.take 5 [ 1 ]) ]
