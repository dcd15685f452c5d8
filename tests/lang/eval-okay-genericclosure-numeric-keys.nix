# Keys compare as numbers: an integer key equal to an earlier float key (or the
# other way round) is the same key, whichever comes first.
builtins.genericClosure {
  startSet = [ { key = 1.0; from = "float"; } { key = 1; from = "int"; } { key = 2; from = "int"; } { key = 2.0; from = "float"; } ];
  operator = item: if item.key < 3 then [ { key = 3; from = "op"; } { key = 3.0; from = "op-float"; } ] else [ ];
}
