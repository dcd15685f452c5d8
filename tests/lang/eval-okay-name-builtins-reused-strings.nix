# getAttr, hasAttr, catAttrs, removeAttrs and unsafeGetAttrPos given the same
# string values many times, and equal strings built anew, over many sets.
let
  sets = builtins.genList (i: { a = i; b = "b${toString i}"; "a${toString i}" = i * 10; }) 30;
  names = [ "a" "b" "c" ];
  built = map (n: n + "") names;
  pick = s: map (n: if builtins.hasAttr n s then builtins.getAttr n s else null) names;
  pickBuilt = s: map (n: if builtins.hasAttr n s then builtins.getAttr n s else null) built;
in {
  picked = map pick sets;
  pickedBuilt = map pickBuilt sets;
  cat = [ (builtins.catAttrs "a" sets) (builtins.catAttrs "b" sets) (builtins.catAttrs ("a" + "7") sets) ];
  removed = map (s: builtins.attrNames (builtins.removeAttrs s [ "a" "a3" "zz" ])) sets;
  removedBuilt = map (s: builtins.attrNames (builtins.removeAttrs s built)) sets;
  own = map (i: builtins.getAttr "a${toString i}" (builtins.elemAt sets i)) [ 0 1 29 ];
  pos = (builtins.unsafeGetAttrPos "b" (builtins.head sets)).column;
  noPos = builtins.unsafeGetAttrPos "c" (builtins.head sets);
}
