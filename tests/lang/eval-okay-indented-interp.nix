let x = "X"; multi = "m1\nm2"; in
''
  a ${x} b
    ${multi}
  c
''
