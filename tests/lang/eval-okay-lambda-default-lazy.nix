({ a ? throw "unused" }: 2) { }
