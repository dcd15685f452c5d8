with (throw "forced"); x
