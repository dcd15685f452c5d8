builtins.fromTOML ''
a = inf
b = -inf
c = +1.5
d = 1e10
e = 6.626e-34
f = -0.0
g = 1_000.5
h = 5e+22
''
