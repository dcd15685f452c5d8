let x = 5; in [ (x.a or "fallback") ({ a = 1; }.a.b or "mid") ]
