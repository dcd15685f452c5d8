[ ''
    four
      six
    four
'' ''
      six
    four
'' ''
  x
 '' ]
