[ (import ./lib/counter.nix { n = 1; }) (import ./lib/counter.nix { n = 2; }) ]
