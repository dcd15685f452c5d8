# toPath's frame also covers errors raised while forcing its argument.
builtins.toPath (throw "no path")
