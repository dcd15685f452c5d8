builtins.fromTOML ''
a = 'no \escapes'
b = ''''
keep \n as is
''''
''
