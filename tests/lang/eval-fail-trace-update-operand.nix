let
  base = { a = 1; };
  extra = 5;
in
base // extra
