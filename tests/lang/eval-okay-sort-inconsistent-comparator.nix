# A comparator that is no strict weak ordering, as written by mistake in
# real code: "p first, then n" without the `a.p == b.p` test, so that
# (2, "a") < (1, "b") (by n) and (1, "b") < (2, "a") (by p) both hold. The
# result follows from current CppNix's PeekSort (support/sort.rs), derived
# by hand below; CppNix 2.8's std::stable_sort gives other lists for both
# (four: [ "1c" "2a" "1b" "2c" ]; seventeen: "0p" second).
#
# four = [ 1b 2a 1c 2c ]: at most 16 elements, so insertion sort by
#   adjacent swaps: less(2a, 1b) (a < b) -> swap: [ 2a 1b 1c 2c ];
#   less(1c, 1b) false; less(2c, 1c) false. Result [ 2a 1b 1c 2c ].
#
# seventeen = [ 0a 1b 2c 3d 4e 5f 6g 7h 0p 8i 9j 10k 11l 12m 13n 14o 15p ]
#   (v0 .. v16), 17 elements, middle 8:
#   peek less(v8 = 0p, v7 = 7h) (0 < 7) true: a strictly decreasing run;
#   extend left from 7: less(7h, 6g) false, so i = 7; extend right from 7:
#   less(0p, 7h) true, less(8i, 0p) (i < p) true, less(9j, 8i) false, so
#   j = 10; reverse v7..v9 = [ 7h 0p 8i ] to [ 8i 0p 7h ].
#   middle - i = 1 < j - middle = 2: split at i = 7.
#   Left v0..v6 [ 0a .. 6g ]: insertion sort, six false comparisons.
#   Right v7..v16 [ 8i 0p 7h 9j .. 15p ] (10 elements): insertion sort:
#   less(0p, 8i) true -> [ 0p 8i 7h ..]; less(7h, 8i) true -> [ 0p 7h 8i ..],
#   less(7h, 0p) (h < p) true -> [ 7h 0p 8i 9j .. 15p ]; then less(9j, 8i),
#   less(10k, 9j) .. less(15p, 14o) all false.
#   Merge [ 0a .. 6g ] with [ 7h 0p 8i .. 15p ]: less(7h, 0a) .. less(7h, 6g)
#   all false, so the left part comes first, then the right part as it is.
let
  inherit (builtins) sort map;
  e = p: n: { inherit p n; };
  bad = a: b: a.p < b.p || a.n < b.n;
  tags = l: map (x: "${toString x.p}${x.n}") l;
in
{
  four = tags (sort bad [ (e 1 "b") (e 2 "a") (e 1 "c") (e 2 "c") ]);
  seventeen = tags (sort bad [
    (e 0 "a") (e 1 "b") (e 2 "c") (e 3 "d") (e 4 "e") (e 5 "f") (e 6 "g") (e 7 "h") (e 0 "p")
    (e 8 "i") (e 9 "j") (e 10 "k") (e 11 "l") (e 12 "m") (e 13 "n") (e 14 "o") (e 15 "p")
  ]);
}
