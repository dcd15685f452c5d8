let
  check = x: x > 0 && x;
in
check 1
