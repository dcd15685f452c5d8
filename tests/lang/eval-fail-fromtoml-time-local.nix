builtins.fromTOML ''
a = 07:32:00
''
