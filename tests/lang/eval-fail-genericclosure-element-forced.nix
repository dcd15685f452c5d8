# The elements an operator returns are forced at once, under the frame of
# the element the operator was called on.
builtins.genericClosure { startSet = [ { key = 1; } ]; operator = x: [ (throw "bad element") ]; }
