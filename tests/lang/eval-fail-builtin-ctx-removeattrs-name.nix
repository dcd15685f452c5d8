# a name in removeAttrs' list.
builtins.removeAttrs { a = 1; } [ "a" 2 ]
