let f = { a ? { b = 1; }, c ? a.b + 1 }: { d ? c * 10 }: [ a.b c d ]; in [ (f { } { }) (f { a = { b = 5; }; } { d = 0; }) ]
