# appendContext's path flag, with a frame at its position.
builtins.appendContext "x" { "${builtins.storeDir}/00000000000000000000000000000000-a" = { path = 1; }; }
