builtins.fromTOML ''
"a.b" = 1
'c d' = 2
"" = 3
e."f.g".h = 4
''
