builtins.fromTOML ''
[a]
x = 1
[[a.b]]
y = 2
[[a.b]]
y = 3
''
