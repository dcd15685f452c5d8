[ builtins.storeDir builtins.langVersion ]
