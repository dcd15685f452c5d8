(import ./lib/hello.json).name
