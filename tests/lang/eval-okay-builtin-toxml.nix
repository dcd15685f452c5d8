builtins.toXML { a = 1; b = "s<&>\""; c = [ true null 1.5 ]; d = { e = { }; }; f = x: x; g = { a, b ? 1 }: a; h = args@{ ... }: 1; }
