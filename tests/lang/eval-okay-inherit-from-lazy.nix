{ inherit (throw "lazy") a; b = 1; }.b
