''
  literal ''${not interpolated}
  dollar $ sign and $$ two
''
