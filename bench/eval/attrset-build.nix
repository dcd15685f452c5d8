# Attribute-set construction with listToAttrs and lookups by computed names.
let
  n = 200000;
  set = builtins.listToAttrs (builtins.genList (i: { name = "attr${toString i}"; value = i; }) n);
in builtins.foldl' (sum: i: sum + set."attr${toString i}") 0 (builtins.genList (i: i) n)
