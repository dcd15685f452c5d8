[ __curPos.line __curPos.column (baseNameOf __curPos.file) ]
