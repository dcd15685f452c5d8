builtins.attrNames { "é" = 1; Z = 2; a = 3; _ = 4; "0" = 5; "~" = 6; "" = 7; A = 8; }
