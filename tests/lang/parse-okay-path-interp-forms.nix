let a = "x"; in [ ./${a} ./a${a}b ./${a}/${a} /abs/${a} ]
