{ t = builtins.typeOf true; l = map (x: x) [ 1 ]; }
