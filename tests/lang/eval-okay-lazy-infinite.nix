let nat = n: [ n ] ++ (if n > 10 then [] else nat (n + 1)); ones = { head = 1; tail = ones; }; in [ (builtins.head (nat 0)) ones.tail.tail.tail.head ]
