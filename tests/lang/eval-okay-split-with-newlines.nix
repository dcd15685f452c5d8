builtins.split "(\n)+" "a\n\nb\nc"
