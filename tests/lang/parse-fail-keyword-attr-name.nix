let
  x = { };
in
x.then
