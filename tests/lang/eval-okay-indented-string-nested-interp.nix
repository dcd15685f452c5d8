let x = "X"; in ''
  a ${''
    nested ${x}
  ''} b
''
