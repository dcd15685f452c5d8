# |> feeds its left side to the function on its right, left to right;
# <| feeds its right side to the function on its left, right to left.
# Both bind more loosely than every other operator.
let
  double = x: x * 2;
  add = a: b: a + b;
in
{
  into = 3 |> double |> add 1;
  from = double <| add 1 <| 3;
  arith = 1 + 2 |> double;
  impl = false -> false |> (b: !b);
  update = { a = 1; } // { b = 2; } |> builtins.attrNames;
  # A value piped into a call becomes that call's last argument.
  sub = 10 |> builtins.sub 1;
  subFrom = builtins.sub 1 <| 10;
  chain = [ 1 2 3 ] |> map double |> builtins.foldl' add 0;
  paren = (x: x + 1) <| (2 |> double);
  inList = [ (1 |> double) ];
}
