//! nix.conf parsing and precedence, on real files in a temporary directory.

use nivis_config::{Config, ConfigError, DEFAULTS};
use std::collections::HashMap;

fn env_from(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> =
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    move |name| map.get(name).cloned()
}

#[test]
fn defaults_table_is_sorted_for_binary_search() {
    assert!(DEFAULTS.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(Config::new().get("max-jobs").as_deref(), Some("1"));
    assert_eq!(Config::new().get("no-such-setting"), None);
}

#[test]
fn precedence_system_then_user_then_nix_config() {
    let dir = tempfile::tempdir().unwrap();
    let system = dir.path().join("etc");
    let xdg = dir.path().join("home/.config");
    std::fs::create_dir_all(&system).unwrap();
    std::fs::create_dir_all(xdg.join("nix")).unwrap();
    std::fs::write(system.join("nix.conf"), "max-jobs = 4\ncores = 2 # comment\nsubstituters = a b\n").unwrap();
    std::fs::write(xdg.join("nix/nix.conf"), "max-jobs = 8\nextra-substituters = c\n").unwrap();
    let env = env_from(&[
        ("NIX_CONF_DIR", system.display().to_string()),
        ("XDG_CONFIG_HOME", xdg.display().to_string()),
        ("XDG_CONFIG_DIRS", dir.path().join("none").display().to_string()),
        ("NIX_CONFIG", "cores = 3\nkeep-outputs = true".to_string()),
    ]);
    let config = Config::load_with_env(&env).unwrap();
    assert_eq!(config.max_jobs().unwrap(), 8);
    assert_eq!(config.get_u64("cores").unwrap(), Some(3));
    assert_eq!(config.get_list("substituters"), ["a", "b", "c"]);
    assert!(config.get_bool("keep-outputs").unwrap());
}

#[test]
fn include_is_relative_and_missing_include_is_an_error_unless_bang() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/more.conf"), "timeout = 7\n").unwrap();
    std::fs::write(
        dir.path().join("nix.conf"),
        "include sub/more.conf\n!include absent.conf\nsandbox = false\n",
    )
    .unwrap();
    let mut config = Config::new();
    config.apply_file_if_exists(&dir.path().join("nix.conf")).unwrap();
    assert_eq!(config.get_u64("timeout").unwrap(), Some(7));
    assert!(!config.get_bool("sandbox").unwrap());

    std::fs::write(dir.path().join("bad.conf"), "include absent.conf\n").unwrap();
    let error = Config::new().apply_file_if_exists(&dir.path().join("bad.conf")).unwrap_err();
    assert!(matches!(error, ConfigError::MissingInclude { line: 1, .. }), "{error}");
}

#[test]
fn syntax_errors_name_the_origin_and_line() {
    let error = Config::new().apply_text("cores = 1\nthis is wrong\n", "NIX_CONFIG", None).unwrap_err();
    assert_eq!(error.to_string(), "NIX_CONFIG:2: syntax error in configuration line 'this is wrong'");
}

#[test]
fn invalid_typed_values_are_errors_not_defaults() {
    let mut config = Config::new();
    config.set("sandbox", "maybe");
    config.set("cores", "-1");
    assert!(config.get_bool("sandbox").is_err());
    assert!(config.get_u64("cores").is_err());
    config.set("max-jobs", "auto");
    assert!(config.max_jobs().unwrap() >= 1);
}

#[test]
fn values_are_token_lists_as_in_cppnix() {
    let mut config = Config::new();
    config.apply_text("sandbox-paths =   /bin/sh=/x   /usr  \n", "t", None).unwrap();
    assert_eq!(config.get("sandbox-paths").as_deref(), Some("/bin/sh=/x /usr"));
    config.set("extra-sandbox-paths", "/opt");
    assert_eq!(config.get_list("sandbox-paths"), ["/bin/sh=/x", "/usr", "/opt"]);
}
