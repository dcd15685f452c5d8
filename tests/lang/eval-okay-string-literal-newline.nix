[ "line1
line2" "a	b" ]
