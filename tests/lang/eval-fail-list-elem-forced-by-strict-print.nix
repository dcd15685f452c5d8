[ 1 (throw "printed strictly") ]
