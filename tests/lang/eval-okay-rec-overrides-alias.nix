# An attribute that only names another one still sees that one's override.
(rec {
  __overrides = { base = 10; };
  alias = base;
  base = 1;
  both = [ alias base ];
}).both
