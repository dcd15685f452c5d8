let build = n: if n == 0 then [ ] else [ n (build (n - 1)) ]; depth = l: if l == [ ] then 0 else 1 + depth (builtins.elemAt l 1); in depth (build 1000)
