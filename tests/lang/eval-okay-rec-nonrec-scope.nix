let a = "outer"; in
[ { a = "inner"; b = a; }.b
  (rec { a = "inner"; b = a; }).b ]
