map (x: x.key) (builtins.genericClosure { startSet = [ { key = "a"; } ]; operator = x: if builtins.stringLength x.key < 3 then [ { key = x.key + "a"; } { key = x.key + "b"; } ] else [ ]; })
