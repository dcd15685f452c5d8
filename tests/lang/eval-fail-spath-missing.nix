<nixpkgs-surely-missing-from-search-path>
