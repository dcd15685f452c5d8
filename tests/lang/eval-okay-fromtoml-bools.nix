builtins.fromTOML ''
t = true
f = false
''
