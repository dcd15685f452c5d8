[ ("a" + { outPath = "b"; }) ("${{ outPath = "c"; }}d") ]
