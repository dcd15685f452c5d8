let
  key = true;
in
{ x = 1; }.${key}
