[ (x: x) ({ }: 1) ({ ... }: 1) ({ a, b ? 2 }: a) (args@{ a }: a) ({ a }@args: a) ({ a, ... }@args: a) ]
