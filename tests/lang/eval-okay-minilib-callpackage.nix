let l = import ./lib/minilib.nix;
  pkgs = { a = 1; b = 2; c = 3; };
  callPackage = l.callPackageWith pkgs;
in [ (callPackage ({ a, b, d ? 4 }: a + b + d) { }) (callPackage ({ a, c }: a * c) { c = 10; }) (callPackage ./lib/counter.nix { n = 3; }) ]
