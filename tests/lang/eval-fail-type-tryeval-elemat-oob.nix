(builtins.tryEval (builtins.elemAt [ ] 0)).success
