let
  big = 3037000500;
in
big * big * 2
