[ /foo/bar /foo/../bar /foo/./bar /a/b/.. /a/../.. (/foo + "/bar") (/foo + "bar") (/foo + "//bar/") (toString /x/y) ]
