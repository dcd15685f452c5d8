# a comparator that returns no Boolean.
builtins.sort (a: b: "yes") [ 2 1 ]
