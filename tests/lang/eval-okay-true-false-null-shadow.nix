let true = false; in [ true (with { null = 1; }; null) ]
