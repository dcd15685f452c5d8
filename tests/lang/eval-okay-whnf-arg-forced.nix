# An argument computed from values (`f (1 + 1)`) prints as its value once
# something has forced it, before or after it was captured: a variable read,
# an operator, a comparison, an interpolation, an assertion, a built-in, or
# another function given it; an operation on it that is not forced yet
# forces nothing.
let
  heads = xs: builtins.seq (builtins.foldl' (acc: x: builtins.seq x acc) null xs) xs;
  id = y: y;
in
heads [
  ((x: builtins.seq x [ x ]) (1 + 1))
  ((x: [ x (builtins.seq x x) ]) (1 + 1))
  ((x: if x < 3 then [ x ] else [ ]) (1 + 1))
  ((x: [ (id x) x ]) (1 + 1))
  ((x: let l = [ x ]; in builtins.seq (id x) l) (1 + 1))
  ((x: let l = [ x ]; in builtins.seq (id (x + 1)) l) (1 + 1))
  ((x: let l = [ x ]; in builtins.seq l (builtins.seq (x + 0) l)) (1 + 1))
  ((x: let y = x - 1; in [ x y ]) (1 + 1))
  ((x: let y = x - 1; in builtins.seq y [ x y ]) (1 + 1))
  ((x: builtins.seq (x + 1) [ x ]) (1 + 1))
  ((x: builtins.seq (x < 1) [ x ]) (1 + 1))
  ((x: builtins.seq (-x) [ x ]) (1 + 1))
  ((x: builtins.seq "${toString x}" [ x ]) (1 + 1))
  ((x: builtins.seq (toString x) [ x ]) (1 + 1))
  ((x: assert x == 2; [ x ]) (1 + 1))
  ((x: builtins.deepSeq x [ x ]) (1 + 1))
  ((x: if x then [ x ] else [ ]) (1 < 2))
  ((x: builtins.seq (x && true) [ x ]) (1 == 1))
  ((x: y: builtins.seq y [ x y ]) (1 + 1) (3 - 1))
  (let f = n: if n < 2 then [ n ] else f (n - 1); in f 5)
  (let f = n: acc: if n == 0 then [ acc ] else f (n - 1) (acc + n); in f 10 0)
  (let f = n: acc: if n == 0 then { inherit n acc; } else f (n - 1) (acc + n); in f 10 0)
]
