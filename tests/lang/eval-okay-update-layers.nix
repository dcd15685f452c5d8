# `//` with a small right side over a larger set: look-ups, shadowing, names,
# values, equality, printing and JSON must not depend on how the result is kept.
let
  base = { a = 1; b = 2; c = 3; d = 4; e = 5; f = 6; g = 7; h = 8; };
  one = base // { b = "two"; z = 26; };
  two = one // { a = "one"; };
  three = two // { z = null; y = 25; };
  chain = builtins.foldl' (acc: i: acc // { "k${toString i}" = i; c = i; }) base (builtins.genList (i: i) 20);
  deep = builtins.foldl' (acc: i: acc // { a = i; }) base (builtins.genList (i: i) 12);
  withOuts = let d = base // { out = "o"; } // { dev = "d"; }; in d // { all = [ d.out d.dev ]; };
in {
  inherit one two three;
  names = builtins.attrNames three;
  values = builtins.attrValues three;
  len = [ (builtins.length (builtins.attrNames one)) (builtins.length (builtins.attrNames three)) ];
  has = [ (three ? a) (three ? z) (three ? q) (one ? y) ];
  eq = [ (three == base // { b = "two"; a = "one"; z = null; y = 25; }) (one == two) (base // { } == base) ];
  chainNames = builtins.attrNames chain;
  chainC = chain.c;
  chainLen = builtins.length (builtins.attrValues chain);
  deepA = deep.a;
  deepSame = deep == base // { a = 11; };
  json = builtins.toJSON three;
  removed = builtins.attrNames (builtins.removeAttrs three [ "b" "y" ]);
  mapped = builtins.mapAttrs (n: v: if builtins.isInt v then v * 10 else v) three;
  inter = builtins.intersectAttrs { a = 0; z = 0; x = 0; } three;
  inherit withOuts;
  catted = builtins.catAttrs "a" [ one two three deep ];
  pos = builtins.unsafeGetAttrPos "a" two != null;
  overLarge = (builtins.listToAttrs (builtins.genList (i: { name = "p${toString i}"; value = i; }) 50)) // { p3 = "x"; q = 1; };
}
