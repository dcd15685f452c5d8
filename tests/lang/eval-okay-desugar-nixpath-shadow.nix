let __nixPath = [ { prefix = "lib"; path = ./lib; } ]; in [ (builtins.typeOf <lib>) (baseNameOf <lib/id.nix>) ((import <lib/id.nix>) 5) ]
