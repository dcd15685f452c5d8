builtins.genericClosure { startSet = [ ]; operator = x: [ x ]; }
