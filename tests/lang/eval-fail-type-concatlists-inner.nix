builtins.concatLists [ 1 ]
