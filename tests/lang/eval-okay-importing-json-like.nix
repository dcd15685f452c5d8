(builtins.fromJSON (builtins.readFile ./lib/hello.json)).nums
