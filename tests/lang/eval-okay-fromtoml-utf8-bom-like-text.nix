builtins.fromTOML ''
a = "日本"
"キー" = "値"
''
