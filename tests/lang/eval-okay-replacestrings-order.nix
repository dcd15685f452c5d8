# replaceStrings: at each position the first pattern in the list that occurs
# there wins, and scanning goes on after the replaced text.
let r = builtins.replaceStrings; in [
  (r [ "ab" "a" "b" ] [ "1" "2" "3" ] "aababbab ba")
  (r [ "a" "ab" ] [ "1" "2" ] "abab")
  (r [ "aa" "a" ] [ "X" "y" ] "aaaaa")
  (r [ "bc" "abcd" ] [ "1" "2" ] "abcd abc bcd")
  (r [ "ana" "nan" ] [ "<ana>" "<nan>" ] "bananananas")
  (r [ "end" ] [ "END" ] "the end")
  (r [ "a" "b" "c" "d" "e" "f" "g" "h" "i" ] [ "1" "2" "3" "4" "5" "6" "7" "8" "9" ] "abcdefghij ihgfedcba")
  (r [ "" "a" ] [ "-" "A" ] "abc")
  (r [ "ss" "s" ] [ "S" "z" ] "mississippi sss")
]
