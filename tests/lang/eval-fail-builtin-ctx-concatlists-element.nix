# an element of concatLists' list.
builtins.concatLists [ [ 1 ] 2 ]
