let
  s = { inner = 3; };
in
s.inner.deeper
