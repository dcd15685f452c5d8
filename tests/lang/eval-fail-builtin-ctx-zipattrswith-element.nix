# an element of zipAttrsWith's list.
builtins.zipAttrsWith (n: v: v) [ { a = 1; } [ ] ]
