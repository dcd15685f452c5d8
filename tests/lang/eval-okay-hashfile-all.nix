map (a: builtins.hashFile a ./lib/data.txt) [ "md5" "sha1" "sha256" "sha512" ]
