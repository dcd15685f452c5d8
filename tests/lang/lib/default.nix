{
  name = "lib-default";
  fromSub = import ./sub/value.nix;
}
