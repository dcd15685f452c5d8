with builtins; [ (seq 1 2) (seq [ (throw "shallow") ] "ok") (seq { a = throw "shallow"; } "ok") ]
