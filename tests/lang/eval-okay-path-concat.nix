[ (baseNameOf (./lib + "/sub")) (builtins.typeOf (./lib + "/x")) (baseNameOf (./. + "/lib")) (builtins.typeOf ("a" + ./lib)) ]
