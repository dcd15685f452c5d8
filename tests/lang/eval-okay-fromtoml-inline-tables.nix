builtins.fromTOML ''
point = { x = 1, y = 2 }
empty = {}
nested = { a = { b = { c = [ 1, { d = 2 } ] } } }
''
