let l = import ./lib/minilib.nix;
  base = self: { x = 1; y = self.x + 1; };
  overlay = self: super: { x = super.x + 10; z = self.y * 2; };
in l.fix (l.extends overlay base)
