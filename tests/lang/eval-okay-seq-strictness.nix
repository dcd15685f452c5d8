builtins.seq { a = throw "lazy"; } (builtins.seq [ (throw "lazy") ] "fine")
