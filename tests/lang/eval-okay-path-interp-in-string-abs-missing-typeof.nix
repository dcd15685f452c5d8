builtins.typeOf "${toString /a/b}c"
