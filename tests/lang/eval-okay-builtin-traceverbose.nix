[ (builtins.traceVerbose "message" 5) (builtins.traceVerbose (throw "not forced") 6) ]
