builtins.toXML [ "it's <a> & \"b\"\n\r\t" { "na'me<" = "v"; } ]
