# head of an empty list.
builtins.head (builtins.tail [ 1 ])
