let l = import ./lib/minilib.nix; in (l.fix (self: { even = n: if n == 0 then true else self.odd (n - 1); odd = n: if n == 0 then false else self.even (n - 1); })).even 100
