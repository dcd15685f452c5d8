let f = args@{ a ? 5 }: [ a (args ? a) (builtins.attrNames args) ]; in f { }
