builtins.fromJSON ''"\u00e9\u4e2d\ud83d\ude00"'' 
