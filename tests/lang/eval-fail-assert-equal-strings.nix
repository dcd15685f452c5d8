let
  name = "left";
in
assert name == "right";
name
