let k = "b"; in [ ({ b = 2; }.${k} or 0) ({ }.${k} or 0) ]
