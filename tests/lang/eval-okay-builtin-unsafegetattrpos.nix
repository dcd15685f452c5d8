let
  s = {
    a = 1;
      bb = 2;
  };
  p = builtins.unsafeGetAttrPos "bb" s;
in [ p.line p.column (baseNameOf p.file) (builtins.unsafeGetAttrPos "missing" s) ]
