# builtins.sort with strict weak orderings on lists long enough (more than
# 16 elements) for current CppNix's PeekSort to peek for runs, split and
# merge instead of insertion-sorting; with such a comparator every stable
# sort gives the same list, so CppNix 2.8 (std::stable_sort) agrees.
let
  inherit (builtins) sort genList lessThan map;
  rec' = k: v: { inherit k v; };
  byKey = a: b: a.k < b.k;
  tags = l: map (x: "${toString x.k}${x.v}") l;
  letters = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" ];
  # Equal keys in a strictly decreasing prefix must not be reversed.
  down = genList (i: rec' (9 - i / 2) (builtins.elemAt letters i)) 20;
  # A long ascending run with a dip in the middle (a decreasing run of two).
  dip = [ 5 6 7 8 9 10 11 12 13 14 0 1 2 3 4 15 16 17 18 19 ];
  # Runs that cover the middle of a sub-range (40 elements).
  leftRun = genList (i: 200 + i) 15 ++ genList (i: 100 + i) 20 ++ genList (i: 50 + i) 5;
  rightRun = genList (i: 200 + i) 5 ++ genList (i: 100 + i) 20 ++ genList (i: 50 + i) 15;
  # Many duplicates in no order (keys i * 7 mod 5).
  dups = genList (i: rec' (i * 7 - (i * 7 / 5) * 5) (builtins.elemAt letters (i - (i / 20) * 20))) 37;
  organ = genList (i: if i < 18 then i else 35 - i) 36;
in
{
  ascending = sort lessThan (genList (i: i) 17);
  descending = sort lessThan (genList (i: 16 - i) 17);
  down = tags (sort byKey down);
  dip = sort lessThan dip;
  dipLambda = sort (a: b: a < b) dip;
  leftRun = sort lessThan leftRun;
  rightRun = sort (a: b: a < b) rightRun;
  dups = tags (sort byKey dups);
  dupsReversed = tags (sort (a: b: b.k < a.k) dups);
  organ = sort lessThan organ;
  strings = sort lessThan [ "q" "b" "x" "a" "m" "b" "z" "c" "y" "d" "p" "e" "o" "f" "n" "g" "h" "a" "k" "j" ];
}
