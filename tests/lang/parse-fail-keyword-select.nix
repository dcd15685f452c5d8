x: x.then
