let x = "v"; in [ ''
  ${x}
    y
'' ''
    ${x} y
  z
'' ''
  ${x}${x}
'' ]
