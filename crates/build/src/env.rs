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

use crate::error::BuildError;
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

/// Computes the builder's environment as CppNix's `initEnv` does. Fails only
/// on a malformed `exportReferencesGraph`.
pub fn builder_environment(request: &BuildRequest) -> Result<BuilderEnvironment, BuildError> {
    builder_environment_at(request, &request.sandbox_build_dir.to_string_lossy())
}

/// The environment with `build_top` as the build directory the builder sees:
/// `sandbox_build_dir` in the sandbox, the host directory without one.
pub(crate) fn builder_environment_at(
    request: &BuildRequest,
    build_top: &str,
) -> Result<BuilderEnvironment, BuildError> {
    let build_top = build_top.to_string();
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
            write_reference_graph_files(request, &mut files)?;
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
            add_reference_graphs_to_json(request, &mut json)?;
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
    Ok(BuilderEnvironment { vars, files })
}

/// `exportReferencesGraph` without structured attrs: pairs `name path`; the
/// closure of each path goes to file `name` in the format of
/// `nix-store --register-validity` (deriver left empty), as CppNix writes it.
fn write_reference_graph_files(request: &BuildRequest, files: &mut Vec<(String, Vec<u8>)>) -> Result<(), BuildError> {
    let Some(setting) = request.env.get("exportReferencesGraph") else {
        return Ok(());
    };
    let tokens: Vec<&str> = setting.split([' ', '\t', '\n', '\r']).filter(|token| !token.is_empty()).collect();
    if !tokens.len().is_multiple_of(2) {
        return Err(BuildError::InvalidRequest(format!(
            "odd number of tokens in 'exportReferencesGraph': '{setting}'"
        )));
    }
    for pair in tokens.chunks(2) {
        let (file_name, path) = (pair[0], pair[1]);
        if !is_export_file_name(file_name) {
            return Err(BuildError::InvalidRequest(format!(
                "invalid file name '{file_name}' in 'exportReferencesGraph'"
            )));
        }
        let closure = exported_closure(request, [path])?;
        let mut text = String::new();
        for path in &closure {
            let info = &request.input_path_infos[path];
            text.push_str(&format!("{path}\n\n{}\n", info.references.len()));
            for reference in &info.references {
                text.push_str(reference);
                text.push('\n');
            }
        }
        files.push((file_name.to_string(), text.into_bytes()));
    }
    Ok(())
}

/// `exportReferencesGraph` with structured attrs: an object of name to list of
/// paths; each name becomes a top-level key holding the closure's path infos
/// (`path`, `narHash`, `narSize`, `references`, `ca`, `closureSize`).
fn add_reference_graphs_to_json(request: &BuildRequest, json: &mut Map<String, Value>) -> Result<(), BuildError> {
    let Some(Value::Object(graphs)) = json.get("exportReferencesGraph").cloned() else {
        return Ok(());
    };
    for (name, roots) in graphs {
        let roots: Vec<String> = match roots {
            Value::Array(items) => items.iter().map(|item| item.as_str().unwrap_or_default().to_string()).collect(),
            Value::String(path) => vec![path],
            _ => Vec::new(),
        };
        let closure = exported_closure(request, roots.iter().map(String::as_str))?;
        let infos = closure
            .iter()
            .map(|path| {
                let info = &request.input_path_infos[path];
                let mut object = Map::new();
                object.insert("path".to_string(), Value::String(path.clone()));
                object.insert(
                    "narHash".to_string(),
                    Value::String(info.nar_hash.encode(nivis_formats::HashEncoding::Nix32, true)),
                );
                object.insert("narSize".to_string(), Value::from(info.nar_size));
                object.insert(
                    "references".to_string(),
                    Value::Array(info.references.iter().cloned().map(Value::String).collect()),
                );
                if let Some(ca) = &info.ca {
                    object.insert("ca".to_string(), Value::String(ca.clone()));
                }
                let closure_size: u64 = closure_of(request, [path.as_str()])
                    .map(|paths| paths.iter().map(|p| request.input_path_infos[p].nar_size).sum())
                    .unwrap_or(0);
                object.insert("closureSize".to_string(), Value::from(closure_size));
                Value::Object(object)
            })
            .collect();
        json.insert(name, Value::Array(infos));
    }
    Ok(())
}

fn is_export_file_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && bytes.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The closure of `roots` within the input closure, checked as CppNix does:
/// each root must be an input, and every path needs its info.
fn exported_closure<'a>(
    request: &BuildRequest,
    roots: impl IntoIterator<Item = &'a str>,
) -> Result<std::collections::BTreeSet<String>, BuildError> {
    let store_prefix = format!("{}/", request.store_dir.display());
    let mut checked_roots = Vec::new();
    for root in roots {
        // A path inside a store path names the store path.
        let Some(rest) = root.strip_prefix(&store_prefix) else {
            return Err(BuildError::InvalidRequest(format!(
                "'exportReferencesGraph' contains a non-store path '{root}'"
            )));
        };
        let store_path = format!("{store_prefix}{}", rest.split('/').next().unwrap_or(rest));
        if !request.input_paths.contains(&store_path) {
            return Err(BuildError::InvalidRequest(format!(
                "cannot export references of path '{store_path}' because it is not in the input closure of the derivation"
            )));
        }
        checked_roots.push(store_path);
    }
    let closure = closure_of(request, checked_roots.iter().map(String::as_str))?;
    if let Some(derivation) = closure.iter().find(|path| path.ends_with(".drv")) {
        return Err(BuildError::InvalidRequest(format!(
            "'exportReferencesGraph' of a closure holding the derivation '{derivation}' (whose outputs CppNix adds) is not supported yet"
        )));
    }
    Ok(closure)
}

fn closure_of<'a>(
    request: &BuildRequest,
    roots: impl IntoIterator<Item = &'a str>,
) -> Result<std::collections::BTreeSet<String>, BuildError> {
    let mut closure = std::collections::BTreeSet::new();
    let mut pending: Vec<String> = roots.into_iter().map(str::to_string).collect();
    while let Some(path) = pending.pop() {
        if closure.contains(&path) {
            continue;
        }
        let info = request.input_path_infos.get(&path).ok_or_else(|| {
            BuildError::InvalidRequest(format!("no path info for '{path}', needed by 'exportReferencesGraph'"))
        })?;
        pending.extend(info.references.iter().filter(|reference| !closure.contains(*reference)).cloned());
        closure.insert(path);
    }
    Ok(closure)
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
pub fn structured_attrs_from_env(drv_env: &BTreeMap<String, String>) -> Result<Option<Map<String, Value>>, BuildError> {
    let Some(json) = drv_env.get("__json") else {
        return Ok(None);
    };
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(object)) => Ok(Some(object)),
        Ok(_) => Err(BuildError::InvalidRequest("__json is not a JSON object".to_string())),
        Err(error) => Err(BuildError::InvalidRequest(format!("__json is not valid JSON: {error}"))),
    }
}
