builtins.fromTOML ''
a = 9223372036854775807
b = -9223372036854775808
c = +42
d = 0
e = -0
f = 0xDEAD_BEEF
g = 0o777
''
