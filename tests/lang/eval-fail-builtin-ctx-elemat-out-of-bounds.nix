# elemAt names the index and the list's size.
builtins.elemAt [ 1 2 ] 2
