# A variable bound by `with` becomes a thunk wherever it is an argument or an
# element, even once the `with` set has been evaluated: an undefined one is an
# error only if its value is needed. Current CppNix's lookupVar returns no
# value for a `with` variable when asked not to evaluate; 2.8 looked it up in
# the already forced set and failed with "undefined variable 'y'" here.
with { z = 1; };
[ z ((x: 1) y) (builtins.length [ y y ]) ]
