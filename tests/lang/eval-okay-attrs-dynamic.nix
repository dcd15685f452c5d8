let k = "key"; n = "num"; in { ${k} = 1; "${n}2" = 2; "lit" = 3; }
