{ a = 1; }.a or (throw "never")
