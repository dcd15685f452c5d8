let
  drv = derivation { name = "p"; system = "s"; builder = "/b"; outputs = [ "out" "doc" ]; };
  at = name: builtins.unsafeGetAttrPos name drv;
in map at [ "all" "drvAttrs" "out" "doc" "outPath" "drvPath" "type" "outputName" ]
