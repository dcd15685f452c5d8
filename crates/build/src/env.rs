//! The builder's environment and the files CppNix puts into the build directory
//! before the builder starts (`passAsFile` attributes, `.attrs.json`,
//! `.attrs.sh`). Checked against CppNix 2.8 by dumping `env` from inside its
//! sandbox (see `tests/sandbox.rs`).
//!
//! One deliberate difference: for structured attributes CppNix 2.8 sets
//! `NIX_ATTRS_JSON_FILE`/`NIX_ATTRS_SH_FILE` to the *host* path of the build
//! directory, which does not exist inside the sandbox; later CppNix versions
//! fixed this to the sandbox path, and so do we.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::request::BuildRequest;

/// `HOME` inside the sandbox: a directory that does not exist, so builders
/// cannot depend on a home directory.
pub const HOMELESS_SHELTER: &str = "/homeless-shelter";

/// The environment the builder is started with, and the files (name relative to
/// the build directory, contents) to create in the build directory first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuilderEnvironment {
    pub vars: BTreeMap<String, String>,
    pub files: Vec<(String, Vec<u8>)>,
}

/// Computes the builder's environment as CppNix's `initEnv` does.
pub fn builder_environment(request: &BuildRequest) -> BuilderEnvironment {
    let build_top = request.sandbox_build_dir.to_string_lossy().into_owned();
    let mut vars = BTreeMap::new();
    let mut files = Vec::new();

    vars.insert("PATH".to_string(), "/path-not-set".to_string());
    vars.insert("HOME".to_string(), HOMELESS_SHELTER.to_string());
    vars.insert("NIX_STORE".to_string(), request.store_dir.to_string_lossy().into_owned());
    vars.insert("NIX_BUILD_CORES".to_string(), request.build_cores.to_string());

    match &request.structured_attrs {
        None => {
            // Attributes named in passAsFile go to a file whose name is derived
            // from the attribute name, and `<name>Path` points to it.
            let pass_as_file: Vec<&str> = request
                .env
                .get("passAsFile")
                .map(|list| list.split([' ', '\t', '\n', '\r']).filter(|word| !word.is_empty()).collect())
                .unwrap_or_default();
            for (name, value) in &request.env {
                if pass_as_file.contains(&name.as_str()) {
                    let file_name = format!(".attr-{}", nix32_sha256(name.as_bytes()));
                    vars.insert(format!("{name}Path"), format!("{build_top}/{file_name}"));
                    files.push((file_name, value.as_bytes().to_vec()));
                } else {
                    vars.insert(name.clone(), value.clone());
                }
            }
        }
        Some(attrs) => {
            let mut json = attrs.clone();
            let outputs: Map<String, Value> =
                request.outputs.iter().map(|(name, path)| (name.clone(), Value::String(path.clone()))).collect();
            json.insert("outputs".to_string(), Value::Object(outputs));
            let json = sorted_object(&json);
            files.push((
                ".attrs.json".to_string(),
                serde_json::to_string(&Value::Object(json.clone())).unwrap_or_default().into_bytes(),
            ));
            files.push((".attrs.sh".to_string(), structured_attrs_shell(&json).into_bytes()));
            vars.insert("NIX_ATTRS_JSON_FILE".to_string(), format!("{build_top}/.attrs.json"));
            vars.insert("NIX_ATTRS_SH_FILE".to_string(), format!("{build_top}/.attrs.sh"));
        }
    }

    for name in ["NIX_BUILD_TOP", "TMPDIR", "TEMPDIR", "TMP", "TEMP", "PWD"] {
        vars.insert(name.to_string(), build_top.clone());
    }
    if request.fixed_output {
        vars.insert("NIX_OUTPUT_CHECKED".to_string(), "1".to_string());
        for (name, value) in &request.impure_env {
            vars.insert(name.clone(), value.clone());
        }
    }
    vars.insert("NIX_LOG_FD".to_string(), "2".to_string());
    vars.insert("TERM".to_string(), "xterm-256color".to_string());
    BuilderEnvironment { vars, files }
}

/// SHA-256 of `data` in nix32, as CppNix's `hashString(htSHA256, s).to_string(Base32, false)`.
fn nix32_sha256(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    nivis_formats::nixbase32::encode(&digest)
}

/// A copy of `object` with keys in byte order at every level: nlohmann::json,
/// which CppNix uses, always sorts keys; serde_json may be built with
/// `preserve_order` by another crate of the workspace.
fn sorted_object(object: &Map<String, Value>) -> Map<String, Value> {
    let mut keys: Vec<&String> = object.keys().collect();
    keys.sort();
    keys.into_iter().map(|key| (key.clone(), sorted_value(&object[key]))).collect()
}

fn sorted_value(value: &Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(sorted_object(object)),
        Value::Array(items) => Value::Array(items.iter().map(sorted_value).collect()),
        other => other.clone(),
    }
}

/// `.attrs.sh`: the top-level attributes as bash `declare` statements. Values
/// that bash cannot hold (nested lists/sets, fractional numbers) are left out,
/// and so are keys that are not shell variable names, as in CppNix.
pub(crate) fn structured_attrs_shell(json: &Map<String, Value>) -> String {
    let mut out = String::new();
    for (key, value) in json {
        if !is_shell_variable_name(key) {
            continue;
        }
        if let Some(simple) = shell_simple_value(value) {
            out.push_str(&format!("declare {key}={simple}\n"));
        } else if let Value::Array(items) = value {
            let rendered: Option<Vec<String>> = items.iter().map(shell_simple_value).collect();
            if let Some(rendered) = rendered {
                let body: String = rendered.iter().map(|item| format!("{item} ")).collect();
                out.push_str(&format!("declare -a {key}=({body})\n"));
            }
        } else if let Value::Object(entries) = value {
            let rendered: Option<Vec<String>> = entries
                .iter()
                .map(|(key2, value2)| shell_simple_value(value2).map(|v| format!("[{}]={v} ", shell_escape(key2))))
                .collect();
            if let Some(rendered) = rendered {
                out.push_str(&format!("declare -A {key}=({})\n", rendered.concat()));
            }
        }
    }
    out
}

fn is_shell_variable_name(name: &str) -> bool {
    let mut chars = name.bytes();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// CppNix renders numbers through a C `int` (so integers wrap at 32 bits) and
/// only when they are whole; null is `''`, true is `1`, false is empty.
fn shell_simple_value(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(shell_escape(s)),
        Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                Some((integer as i32).to_string())
            } else if let Some(integer) = number.as_u64() {
                Some((integer as i32).to_string())
            } else {
                let float = number.as_f64()? as f32;
                (float.ceil() == float).then(|| (float as i32).to_string())
            }
        }
        Value::Null => Some("''".to_string()),
        Value::Bool(true) => Some("1".to_string()),
        Value::Bool(false) => Some(String::new()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

fn shell_escape(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The values of the variables a fixed-output derivation lists in
/// `impureEnvVars`, taken from this process's environment; an unset variable
/// is passed as the empty string, as CppNix does. For
/// [`BuildRequest::impure_env`].
pub fn impure_environment(drv_env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let names = drv_env.get("impureEnvVars").map(String::as_str).unwrap_or("");
    names
        .split([' ', '\t', '\n', '\r'])
        .filter(|name| !name.is_empty())
        .map(|name| {
            let value = std::env::var_os(name).map(|value| value.to_string_lossy().into_owned()).unwrap_or_default();
            (name.to_string(), value)
        })
        .collect()
}

/// The structured attributes of a derivation: its `__json` variable parsed,
/// or `None` for a derivation without `__structuredAttrs`. For
/// [`BuildRequest::structured_attrs`].
pub fn structured_attrs_from_env(
    drv_env: &BTreeMap<String, String>,
) -> Result<Option<Map<String, Value>>, crate::BuildError> {
    let Some(json) = drv_env.get("__json") else {
        return Ok(None);
    };
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(object)) => Ok(Some(object)),
        Ok(_) => Err(crate::BuildError::InvalidRequest("__json is not a JSON object".to_string())),
        Err(error) => Err(crate::BuildError::InvalidRequest(format!("__json is not valid JSON: {error}"))),
    }
}
