builtins.fromTOML ''
  title = "example"
  int = 42
  neg = -17
  float = 3.5
  bool = true
  arr = [ 1, 2, 3 ]
  mixed_nested = [ [ 1, 2 ], [ "a" ] ]
  hex = 0xff
  oct = 0o17
  bin = 0b101
  under = 1_000

  [table]
  key = "value"
  "quoted key" = 1

  [table.sub]
  deep = true

  [[items]]
  name = "first"

  [[items]]
  name = "second"
''
