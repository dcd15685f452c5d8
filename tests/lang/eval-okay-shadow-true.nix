let true = 1; null = 2; in [ true null ]
