# listToAttrs over a list only its call holds (its elements may be dropped as
# they are read) and over lists and elements still held elsewhere: the same
# sets either way, the first definition of a name winning.
let
  pairs = builtins.genList (i: { name = "k${toString (i - i / 3 * 3)}"; value = i; }) 10;
  fromMap = builtins.listToAttrs (map (p: p // { value = p.value * 10; }) pairs);
  fromGen = builtins.listToAttrs (builtins.genList (i: builtins.elemAt pairs (9 - i)) 10);
  shared = builtins.listToAttrs pairs;
  held = (x: [ (builtins.listToAttrs x) (builtins.length x) (builtins.head x).name ])
    (builtins.genList (i: { name = "h${toString i}"; value = i; }) 3);
in [
  fromMap
  fromGen
  shared
  held
  (builtins.length pairs)
  (builtins.head pairs)
  (builtins.listToAttrs (builtins.filter (p: p.value > 4) pairs))
  (builtins.listToAttrs (builtins.concatLists [ [ { name = "z"; value = 1; } ] [ { name = "z"; } ] ]))
]
