builtins.genericClosure {
  operator = item: [ ];
}
