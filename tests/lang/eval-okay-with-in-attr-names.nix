with { k = "dyn"; }; { ${k} = k; }
