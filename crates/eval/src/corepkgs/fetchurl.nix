# <nix/fetchurl.nix>: a fixed-output derivation built by `builtin:fetchurl`.
# Its attributes are those of CppNix 2.8's corepkgs file, so derivations made
# with it have the same .drv paths. `unpack` means the URL serves a NAR
# (optionally xz-compressed), which is restored as the output.
{ system ? ""
, url
, hash ? ""
, md5 ? ""
, sha1 ? ""
, sha256 ? ""
, sha512 ? ""
, outputHash ?
    if hash != "" then hash
    else if sha512 != "" then sha512
    else if sha1 != "" then sha1
    else if md5 != "" then md5
    else sha256
, outputHashAlgo ?
    if hash != "" then ""
    else if sha512 != "" then "sha512"
    else if sha1 != "" then "sha1"
    else if md5 != "" then "md5"
    else "sha256"
, executable ? false
, unpack ? false
, name ? baseNameOf (toString url)
}:

derivation {
  builder = "builtin:fetchurl";
  system = "builtin";
  inherit name url executable unpack outputHash outputHashAlgo;
  outputHashMode = if unpack || executable then "recursive" else "flat";
  # The proxy settings of the caller reach the builder.
  impureEnvVars = [ "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy" ];
  # Fetching on a remote builder would only move the bytes twice.
  preferLocalBuild = true;
  # For nix-prefetch-url.
  urls = [ url ];
}
