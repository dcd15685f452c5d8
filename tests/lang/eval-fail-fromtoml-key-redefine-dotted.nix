builtins.fromTOML ''
a = 1
a.b = 2
''
