# genList checks its generator even though no element is built yet.
builtins.length (builtins.genList null 2)
