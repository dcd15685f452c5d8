# Lambda arguments that are integer arithmetic on values, through recursion,
# accumulators, curried and partial calls, built-ins and functors: their
# values, forced.
let
  fib = n: if n < 2 then n else fib (n - 1) + fib (n - 2);
  sum = n: acc: if n == 0 then acc else sum (n - 1) (acc + n);
  countdown = n: if n == 0 then [ ] else [ n ] ++ countdown (n - 1);
  pair = x: y: [ x y ];
  functor = { __functor = self: x: x * 10; };
  half = x: x / 2;
in
[
  (fib 15)
  (sum 1000 0)
  (countdown 5)
  (pair (1 + 1) (2 * 3))
  ((pair (4 - 1)) (2 * 2))
  (functor (1 + 2))
  (half (9 * 9))
  (builtins.foldl' (a: b: a + b) (1 + 1) [ 1 2 3 ])
  (map (x: [ x (x + 1) ]) [ 1 (1 + 1) ])
  ((x: { inherit x; y = x * 2; z = [ x ]; }) (20 + 1))
  ((x: with { a = x; }; a + x) (3 - 1))
  ((x: { y ? x + 1 }: y) (1 + 1) { })
  (let xs = [ 1 2 3 ]; at = i: builtins.elemAt xs i; in at (builtins.length xs - 1))
  ((x: "${toString x}-${toString (x + 1)}") (6 * 7))
]
