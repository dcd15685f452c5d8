{ a = 1; b = throw "printed strictly"; }
