let inf = 1.0e308 * 10.0; in [ inf (-inf) ((-1.0) * 0.0) (toString inf) (inf > 1.0e308) (inf == inf) (builtins.typeOf inf) ]
