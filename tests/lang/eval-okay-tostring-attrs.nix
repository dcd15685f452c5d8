[ (toString { __toString = s: "ts"; }) (toString { outPath = "op"; }) (toString { __toString = s: "wins"; outPath = "loses"; }) ]
