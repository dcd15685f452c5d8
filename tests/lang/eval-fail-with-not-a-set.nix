# A `with` over something that is not a set fails when a variable is looked
# up through it, under a frame at that `with`.
let set = { b = 1; };
in with set; with 2; b
