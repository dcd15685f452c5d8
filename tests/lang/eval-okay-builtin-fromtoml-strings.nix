builtins.fromTOML ''
  basic = "tab\there \u00e9"
  literal = 'C:\path'
  multi = """
  line1
  line2"""
  dotted.key.here = 1
  inline = { a = 1, b = { c = 2 } }
''
