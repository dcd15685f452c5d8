# Comparators that are no strict weak ordering but on which current CppNix's
# PeekSort and CppNix 2.8's std::stable_sort still agree (so this case is
# checked against 2.8):
# - `a: b: a <= b` (non-strict): insertion sort moves an element left past
#   every neighbour with a key >= its own, a merge takes the right element
#   on equal keys, a "weakly increasing" run (not b <= a) is strictly
#   increasing and a "strictly decreasing" run (b <= a) is non-increasing,
#   then reversed: every step puts equal keys in reverse input order, so
#   the result is sorted by key with ties reversed, whatever the algorithm;
# - `a: b: true`: every insertion reaches the front, every merge takes the
#   whole right part first, a peek sees one decreasing run: the list is
#   reversed;
# - `a: b: false`: nothing ever moves.
let
  inherit (builtins) sort genList map elemAt;
  rec' = k: v: { inherit k v; };
  tags = l: map (x: "${toString x.k}${x.v}") l;
  letters = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" ];
  keyed = n: genList (i: rec' (i * 7 - (i * 7 / 3) * 3) (elemAt letters (i - (i / 20) * 20))) n;
  le = a: b: a.k <= b.k;
in
{
  le4 = tags (sort le [ (rec' 1 "a") (rec' 0 "b") (rec' 1 "c") (rec' 1 "d") ]);
  le7 = tags (sort le (keyed 7));
  le16 = tags (sort le (keyed 16));
  le17 = tags (sort le (keyed 17));
  le40 = tags (sort le (keyed 40));
  leNumbers = sort (a: b: a <= b) [ 3 1 2 1 3 2 2 1 3 1 2 3 1 2 3 3 2 1 1 ];
  true2 = sort (a: b: true) [ 1 2 ];
  true16 = sort (a: b: true) (genList (i: i) 16);
  true17 = sort (a: b: true) (genList (i: i) 17);
  true40 = sort (a: b: true) (genList (i: i) 40);
  false20 = sort (a: b: false) (genList (i: 19 - i) 20);
}
