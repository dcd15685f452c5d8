let
  a = 1;
  bb = 2;
  src = { c = 3; d = 4; };
  s = {
    inherit a   bb;
    inherit (src)
      c "d";
  };
  at = name: let p = builtins.unsafeGetAttrPos name s; in [ name p.line p.column ];
in map at [ "a" "bb" "c" "d" ]
