[ (baseNameOf ./eval-okay-path-basename.nix) (baseNameOf ./lib/sub) (builtins.typeOf ./x) (builtins.typeOf /abs) ]
