builtins.fromTOML ''
a = "\u00e9\U0001F600"
b = "tab\tnewline\nquote\"backslash\\"
''
