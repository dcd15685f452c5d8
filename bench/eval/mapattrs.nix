# mapAttrs, attrValues and filterAttrs-style rebuilding over large sets.
let
  base = builtins.listToAttrs (builtins.genList (i: { name = "p${toString i}"; value = { v = i; }; }) 50000);
  mapped = builtins.mapAttrs (name: value: value // { name = name; double = value.v * 2; }) base;
  rounds = builtins.genList (r: builtins.mapAttrs (n: v: v.double + r) mapped) 4;
in builtins.foldl' (acc: set: acc + builtins.length (builtins.attrValues set)) 0 rounds
