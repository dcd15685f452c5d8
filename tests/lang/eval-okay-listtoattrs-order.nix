# listToAttrs with names in every order: the first definition of a name wins,
# and a repeated name needs no value.
let
  names = builtins.genList (i: "n${toString (i * 37 - (i * 37) / 101 * 101)}") 101;
  pairs = map (n: { name = n; value = n; }) names;
  set = builtins.listToAttrs (pairs ++ [ { name = "n5"; value = "second"; } { name = "n7"; } ] ++ map (p: p // { value = "late"; }) pairs);
in [
  (builtins.length (builtins.attrNames set))
  set.n5
  set.n7
  set.n100
  (builtins.head (builtins.attrNames set))
  (builtins.all (n: set.${n} == n) names)
]
