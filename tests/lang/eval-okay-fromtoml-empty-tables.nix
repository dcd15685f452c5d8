builtins.fromTOML ''
[a]
[b.c]
[d]
e = []
''
