let __lessThan = a: b: "lt"; in 1 <= 2
