let x = "  inner"; in ''
${x}
  a
''
