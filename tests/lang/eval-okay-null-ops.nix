[ (null == null) (null != false) (builtins.isNull null) (toString null) ([ null ] == [ null ]) ]
