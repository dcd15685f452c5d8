# Attribute names given by string values: the same string value used as a
# name in many sets, names built by interpolation, names from attrNames, and
# `or` defaults along dynamic paths.
let
  keys = [ "default" "example" "description" "apply" "type" ];
  opt = { default = 1; type = "int"; description = "d"; };
  res = { type = "str"; apply = x: x; };
  bothHave = k: opt ? ${k} && res ? ${k};
  names = builtins.attrNames { zeta = 1; alpha = 2; mid = 3; };
  sets = builtins.genList (i: { "n${toString i}" = i; alpha = i * 2; mid = "m${toString i}"; }) 20;
  pick = s: map (n: s.${n} or null) names;
  k = "alpha";
  nested = { a = { alpha = { b = 5; }; }; };
  dyn = map (i: { name = "x${toString (builtins.div i 3)}"; value = i; }) (builtins.genList (i: i) 9);
in {
  both = map bothHave keys;
  again = map bothHave (keys ++ keys);
  picked = map pick sets;
  interpolated = map (s: s."${k}" + s.${"al" + "pha"}) sets;
  quoted = map (i: (builtins.elemAt sets i)."n${toString i}") [ 0 5 19 ];
  nestedHit = nested.a.${k}.b or "none";
  nestedMiss = nested.a.${"beta"}.b or "none";
  nestedNotSet = nested.a.${k}.b.c or "none";
  hasPath = [ (nested ? a.${k}.b) (nested ? a.${k}.c) (nested ? ${k}) ];
  fromAttrNames = map (n: { ${n} = n; }.${n}) names;
  listed = builtins.listToAttrs dyn;
  numbered = builtins.attrNames (builtins.foldl' (acc: s: acc // { ${s.mid} = true; }) { } sets);
}
