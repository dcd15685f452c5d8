with builtins; [ true false null (typeOf langVersion) (typeOf nixVersion) (typeOf currentSystem) (typeOf storeDir) (builtins.builtins ? map) ]
