# flakeRefToString refuses negative integers.
builtins.flakeRefToString { type = "github"; owner = "o"; repo = "r"; lastModified = -1; }
