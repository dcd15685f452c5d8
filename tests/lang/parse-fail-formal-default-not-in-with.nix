let f = { a ? b, ... }@args: with args; a; in f { b = "from-args"; }
