# A search path lookup that finds nothing is a catchable error, whatever
# `throw` means in the scope of the lookup.
let throw = abort "not this one"; in
[ (builtins.tryEval <nivis-no-such-search-path-entry>).success
  (builtins.tryEval <nivis-no-such-search-path-entry/x.nix>).value ]
