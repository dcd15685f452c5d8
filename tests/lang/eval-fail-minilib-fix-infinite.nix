let l = import ./lib/minilib.nix; in (l.fix (self: { a = self.b; b = self.a; })).a
