builtins.fromTOML ''
a = { b = 1 }
[a.c]
d = 2
''
