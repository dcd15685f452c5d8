builtins.fromTOML ''
a = [ 1, "two", [ 3 ], { four = 4 } ]
''
