# sort with lessThan itself compares directly, under its own frame.
builtins.sort builtins.lessThan [ { } { } ]
