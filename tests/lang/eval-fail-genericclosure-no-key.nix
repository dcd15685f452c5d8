builtins.genericClosure {
  startSet = [ { id = 1; } ];
  operator = x: [ ];
}
