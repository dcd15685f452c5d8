# builtins.flakeRefToString (CppNix 2.17): attributes back to the URL form,
# `dir` as a query parameter.
map builtins.flakeRefToString [
  { type = "github"; owner = "someone"; repo = "project"; rev = "0f3e1a4c7c9c5a8fd8d0e6b1b0a1c2d3e4f50617"; dir = "nested"; }
  { type = "indirect"; id = "registry-name"; ref = "some-branch"; }
  { type = "path"; path = "/srv/flakes/one"; lastModified = 1700000000; }
  { type = "git"; url = "https://example.org/repo.git"; ref = "main"; shallow = true; }
  { type = "tarball"; url = "https://example.org/archive.tar.gz"; }
  { type = "file"; url = "https://example.org/notes.txt"; }
]
