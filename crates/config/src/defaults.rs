//! CppNix's defaults for the settings nivis reads, in one table.

/// (name, default value as configuration text).
pub const DEFAULTS: &[(&str, &str)] = &[
    ("allow-import-from-derivation", "true"),
    ("build-users-group", ""),
    ("connect-timeout", "0"),
    ("cores", "0"),
    ("download-attempts", "5"),
    ("experimental-features", ""),
    ("extra-platforms", ""),
    ("fallback", "false"),
    ("keep-derivations", "true"),
    ("keep-outputs", "false"),
    ("max-call-depth", "10000"),
    ("max-jobs", "1"),
    ("max-silent-time", "0"),
    ("narinfo-cache-negative-ttl", "3600"),
    ("narinfo-cache-positive-ttl", "2592000"),
    ("pure-eval", "false"),
    ("require-sigs", "true"),
    ("restrict-eval", "false"),
    ("sandbox", "true"),
    ("sandbox-fallback", "true"),
    ("sandbox-paths", ""),
    ("show-trace", "false"),
    ("stalled-download-timeout", "300"),
    ("substituters", "https://cache.nixos.org/"),
    ("system", "x86_64-linux"),
    ("timeout", "0"),
    ("trusted-public-keys", "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="),
    ("trusted-substituters", ""),
];

/// CppNix's default for `name`, if nivis knows the setting.
pub fn default_value(name: &str) -> Option<&'static str> {
    DEFAULTS
        .binary_search_by(|(key, _)| key.cmp(&name))
        .ok()
        .map(|index| DEFAULTS[index].1)
}
