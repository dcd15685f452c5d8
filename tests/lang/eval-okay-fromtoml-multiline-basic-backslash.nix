builtins.fromTOML ''
a = """\
    line one \
    continues"""
b = """
first newline trimmed"""
''
