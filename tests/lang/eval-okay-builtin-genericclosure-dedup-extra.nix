builtins.genericClosure {
  startSet = [ { key = "a"; tag = 1; } { key = "a"; tag = 2; } { key = "b"; tag = 3; } ];
  operator = item: [ { key = "a"; tag = 99; } ];
}
