# A small definition-merging engine in the style of a module system: values
# carry priorities and conditions, lists are ordered, nested sets are merged
# per attribute with mapAttrs/zipAttrsWith (lazy applications), and one
# definition reads the merged result of another.
let
  inherit (builtins) mapAttrs zipAttrsWith foldl' filter sort concatMap isAttrs head length attrNames;
  mkOverride = priority: content: { _type = "override"; inherit priority content; };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkOrder = order: content: { _type = "order"; inherit order content; };
  discharge = d:
    if d._type or "" == "if" then (if d.condition then discharge d.content else [ ])
    else [ d ];
  prio = d: if d._type or "" == "override" then d.priority else 100;
  strip = d: if d._type or "" == "override" then d.content else d;
  orderOf = d: if d._type or "" == "order" then d.order else 1000;
  mergeValues = defs:
    let
      live = concatMap discharge defs;
      best = foldl' (m: d: if prio d < m then prio d else m) 9999 live;
      kept = map strip (filter (d: prio d == best) live);
      sorted = map (d: if d._type or "" == "order" then d.content else d)
        (sort (a: b: orderOf a < orderOf b) kept);
    in
    if kept == [ ] then null
    else if builtins.all builtins.isList sorted then builtins.concatLists sorted
    else if builtins.all isAttrs sorted && !(builtins.any (d: d ? _type) sorted) then mergeSets sorted
    else head sorted;
  mergeSets = sets: zipAttrsWith (name: values: mergeValues values) sets;

  config = mergeSets [
    { services.web = { port = 80; enable = true; args = mkOrder 2000 [ "last" ]; }; }
    { services.web.port = mkOverride 50 8080; services.web.args = [ "middle" ]; }
    { services.web.args = mkOrder 10 [ "first" ]; services.db = mkIf config.services.web.enable { port = 5432; }; }
    { services.cache = mkIf false { port = 1; }; services.web.name = "web-${toString config.services.web.port}"; }
    { users = mapAttrs (n: v: { uid = v; home = "/home/${n}"; }) { alice = 1000; bob = 1001; }; }
    { users.alice.shell = "zsh"; users.bob.uid = mkOverride 1500 0; }
  ];
in {
  inherit config;
  serviceNames = attrNames config.services;
  count = length (attrNames config.users);
}
