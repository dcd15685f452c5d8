let l = import ./lib/minilib.nix; in (l.fix (self: { a = 1; b = self.a + 1; c = self.b * 10; })).c
