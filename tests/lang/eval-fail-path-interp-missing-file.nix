"${/surely/not/existing/path}c"
