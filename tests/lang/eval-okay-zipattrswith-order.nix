# zipAttrsWith: each name's values in the order of the sets, names from
# layered and flat sets, an empty list, sets without common names, and a
# function that takes the name and the values in separate steps.
let
  big = builtins.listToAttrs (builtins.genList (i: { name = "k${toString (builtins.div i 2)}"; value = i; }) 12);
  layered = big // { k1 = "one"; } // { extra = 0; };
  sets = [ { b = 1; a = 2; } layered { a = 3; z = [ ]; } { } { b = 4; k5 = "five"; } ];
  f = name: values: { inherit name values; n = builtins.length values; };
  g = name: let prefix = "${name}:"; in values: prefix + toString (builtins.length values);
in {
  zipped = builtins.zipAttrsWith f sets;
  names = builtins.attrNames (builtins.zipAttrsWith f sets);
  counted = builtins.zipAttrsWith g sets;
  empty = builtins.zipAttrsWith f [ ];
  disjoint = builtins.zipAttrsWith (n: v: v) [ { x = 1; } { y = 2; } ];
  lazy = (builtins.zipAttrsWith (n: v: throw "not forced") [ { a = 1; } ]) ? a;
}
