''
    a

    b
      
    c
''
