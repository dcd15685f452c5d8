builtins.fromTOML ''
a = nan
''
