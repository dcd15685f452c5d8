let n = "world"; x = 5; in
[ "hello ${n}" "${n}${n}" "${toString x}" "a${"b${"c"}d"}e" "${ "" }" "x${ n }y" ]
