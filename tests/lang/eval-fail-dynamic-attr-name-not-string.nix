let
  name = 42;
in
{ ${name} = true; }
