let __curPos = 5; in __curPos.line
