# `//` merges of small sets into a growing one, and lookups in the result.
let
  step = acc: i: acc // { "k${toString (i - i / 500 * 500)}" = i; "last" = i; };
  merged = builtins.foldl' step { } (builtins.genList (i: i) 60000);
in builtins.length (builtins.attrNames merged) + merged.last
