let vals = [ 1 1.5 "s" true null ./p [ ] { } (x: x) builtins.head ]; in
with builtins; map (f: map f vals) [ isInt isFloat isString isBool isNull isPath isList isAttrs isFunction ]
