with builtins; [
  (listToAttrs [ { name = "a"; value = 1; } { name = "b"; value = 2; } ])
  (listToAttrs [ { name = "dup"; value = "first"; } { name = "dup"; value = "second"; } ])
  (listToAttrs [ ])
  (listToAttrs [ { name = "x"; value = 1; extra = "ignored"; } ])
]
