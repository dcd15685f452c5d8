# Lists of one or two elements are "repeated" by where they are stored,
# longer lists by their shared elements.
let
  self = [ self ];
  pair = [ pair 0 ];
  long = [ 1 2 3 ];
  short = [ 1 2 ];
in
[ self pair long long short short ]
