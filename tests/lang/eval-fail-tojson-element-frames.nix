# A failure inside toJSON names the attribute and the list element.
builtins.toJSON { a = [ 1 (throw "second element") ]; }
