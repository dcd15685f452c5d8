toString [ { outPath = "x"; } { __toString = _: "y"; } ]
