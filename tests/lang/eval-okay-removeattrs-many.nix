# removeAttrs with many names, repeated names, names in any order and names the
# set does not have.
let
  set = builtins.listToAttrs (builtins.genList (i: { name = "a${toString i}"; value = i; }) 30);
  drop = [ "a29" "a3" "zzz" "a3" "a10" "" "a0" ] ++ builtins.genList (i: "a${toString (i + 15)}") 10;
in [
  (builtins.attrNames (builtins.removeAttrs set drop))
  (builtins.removeAttrs { x = 1; y = 2; } [ "y" "y" "q" ])
  (builtins.removeAttrs { } [ "a" ])
  (builtins.removeAttrs { a = 1; } [ ])
]
