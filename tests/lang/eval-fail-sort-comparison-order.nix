# The first comparison of a 17-element sort is current CppNix's PeekSort's
# peek at the middle: less(v8, v7) (CppNix 2.8's std::stable_sort began
# with an insertion sort, less(v1, v0)).
builtins.sort (a: b: throw "compared ${toString a} with ${toString b}") (builtins.genList (i: i) 17)
