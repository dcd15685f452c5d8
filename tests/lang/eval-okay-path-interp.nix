let name = "sub"; in [ (baseNameOf ./lib/${name}) (builtins.typeOf ./lib/${name}) (baseNameOf ./lib/${name}/value.nix) ]
