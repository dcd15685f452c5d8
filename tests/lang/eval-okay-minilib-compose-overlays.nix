let l = import ./lib/minilib.nix;
  o1 = self: super: { a = (super.a or 0) + 1; };
  o2 = self: super: { a = super.a * 10; b = self.a; };
in l.fix (l.extends (l.composeExtensions o1 o2) (self: { a = 5; }))
