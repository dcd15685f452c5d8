[ "ab" "a
b" ]
