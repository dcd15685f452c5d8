builtins.fromTOML ''
a = [ [ 1, 2 ], [ "x", "y" ], [ ] ]
b = [
  1,
  2, # comment
]
c = [ 1.5, 2 ]
''
