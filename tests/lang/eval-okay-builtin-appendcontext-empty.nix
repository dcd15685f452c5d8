with builtins; [ (appendContext "abc" { }) (hasContext (appendContext "abc" { })) ]
