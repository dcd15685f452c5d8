with builtins; [
  (replaceStrings [ "a" ] [ "b" ] "banana")
  (replaceStrings [ "an" "a" ] [ "AN" "A" ] "banana")
  (replaceStrings [ "a" "an" ] [ "A" "AN" ] "banana")
  (replaceStrings [ "" ] [ "-" ] "abc")
  (replaceStrings [ "" ] [ "-" ] "")
  (replaceStrings [ "b" "" ] [ "B" "_" ] "abc")
  (replaceStrings [ ] [ ] "same")
  (replaceStrings [ "x" ] [ "" ] "xaxbx")
  (replaceStrings [ "aa" ] [ "b" ] "aaaaa")
  (replaceStrings [ "oo" ] [ "${"o"}" ] "foo")
]
