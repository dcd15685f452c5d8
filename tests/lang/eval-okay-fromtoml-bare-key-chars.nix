builtins.fromTOML ''
A-b_c-9 = 1
1234 = 2
-x = 3
''
