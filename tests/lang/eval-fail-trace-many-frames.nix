let
  down = n: if n == 0 then throw "bottom" else down (n - 1);
in
down 8
