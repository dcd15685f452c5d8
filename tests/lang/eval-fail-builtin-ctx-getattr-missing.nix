# getAttr's missing attribute.
builtins.getAttr "b" { a = 1; }
