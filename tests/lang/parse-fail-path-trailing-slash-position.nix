let
  dir = ./some/dir/;
in
dir
