# Integer arithmetic in arguments is lazy: an overflow or a division by zero
# in an argument that is never used is no error, even when every operand is
# already a value.
let
  big = 9223372036854775807;
  zero = 0;
  ignore = x: "ignored";
  pick = a: b: b;
  count = n: if n == 0 then 0 else 1 + count (n - 1);
  sum = n: acc: if n == 0 then acc else sum (n - 1) (acc + n);
in [
  (ignore (big + 1))
  (ignore (big * 2))
  (ignore (1 / zero))
  (ignore (-big - 2))
  (pick (big + big) (big - 1))
  (count 100)
  (sum 1000 0)
  (let x = 5; in [ (x - 1) (x * x) (x / 2) (x < 6) (x == 5) (x != 5) (x + 1) ])
]
