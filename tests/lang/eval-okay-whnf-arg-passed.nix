# An argument computed from values (`f (1 + 1)`) passed on unforced, to
# another lambda, a curried one, a built-in, a functor or a partial
# application, stays one unevaluated thunk shared by everyone who holds it.
let
  heads = xs: builtins.seq (builtins.foldl' (acc: x: builtins.seq x acc) null xs) xs;
  inner = y: [ y ];
  pair = x: y: [ x y ];
  triple = x: y: z: [ x y z ];
  functor = { __functor = self: x: [ x ]; };
  set = { f = x: [ x ]; };
in
heads [
  ((x: inner x) (1 + 1))
  ((x: inner (x + 1)) (1 + 1))
  ((x: (y: [ y ]) x) (1 + 1))
  (pair (1 + 1) (2 * 3))
  (triple (1 + 1) 2 (5 - 3))
  ((pair (1 + 1)) 3)
  (let p = pair (4 - 1); in p (2 * 2))
  (functor (1 + 1))
  (set.f (1 + 1))
  (builtins.foldl' (a: b: [ a b ]) (1 + 1) [ 3 ])
  (builtins.foldl' pair (1 + 1) [ (2 * 2) ])
  (let fold = builtins.foldl' (a: b: [ a b ]); in fold (1 + 1) [ 3 ])
  (map (x: [ x ]) [ 1 (1 + 1) ])
  ((x: map (y: [ x y ]) [ 1 ]) (2 * 2))
  ((x: builtins.map (y: [ y ]) [ x ]) (2 * 2))
  ((x: let g = y: [ x y ]; in g (x * 2)) (1 + 1))
  ((x: { y ? x }: [ y ]) (1 + 1) { })
  (builtins.map inner [ (1 + 1) ])
]
