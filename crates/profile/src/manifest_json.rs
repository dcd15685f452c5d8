//! `manifest.json`, the manifest of a profile made by `nix profile`, as
//! CppNix 2.8 reads and writes it (`ProfileManifest` in `src/nix/profile.cc`).
//!
//! CppNix 2.8 writes version 2: `{"elements":[{"active":true,"storePaths":[...]},
//! ...],"version":2}`, keys sorted (nlohmann's default object is a sorted map),
//! compact, no trailing newline; an element installed from a flake also has
//! `attrPath`, `originalUrl` and `url`. It reads version 1 (the same with
//! `originalUri`/`uri`) too. We also read version 3 (CppNix 2.20 and later:
//! `elements` is an object keyed by element name, with `priority` and
//! `outputs`), converting it to the version 2 model; we always write version 2,
//! so CppNix 2.8 reads every profile we make.
//!
//! Assumptions: store paths in a manifest are printed under the logical store
//! directory given by the caller; element order is significant (`nix profile
//! list` numbers elements by position, `remove 3` uses that number).

use std::collections::BTreeSet;
use std::path::Path;

use nivis_formats::{StoreDir, StorePath};
use serde_json::{Map, Value};

/// Where an element came from, for elements installed from a flake
/// (CppNix's `ProfileElementSource`). The flake references are kept as the
/// strings the manifest holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProfileElementSource {
    /// The flake reference as the user gave it (`originalUrl`).
    pub original_url: String,
    /// The locked flake reference (`url`).
    pub url: String,
    /// The attribute path inside the flake (`attrPath`).
    pub attr_path: String,
}

/// One installed element: a set of store paths (the outputs of one
/// installable) that are linked into the profile while `active`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileElement {
    pub store_paths: BTreeSet<StorePath>,
    pub source: Option<ProfileElementSource>,
    pub active: bool,
}

impl ProfileElement {
    /// An active element without a source (a store path or a `-f`/`--expr`
    /// installable, which CppNix 2.8 records without one).
    pub fn from_paths(store_paths: BTreeSet<StorePath>) -> ProfileElement {
        ProfileElement { store_paths, source: None, active: true }
    }

    /// The element's names (package names of its store paths, as
    /// `parseDrvName` splits them), sorted and without repeats.
    pub fn names(&self) -> BTreeSet<String> {
        self.store_paths.iter().map(|path| parse_drv_name(path.name()).0.to_string()).collect()
    }

    /// How `nix profile` names the element in messages (CppNix's `describe`):
    /// `<originalUrl>#<attrPath>` for flake elements, else the package names
    /// of its store paths joined with `, `.
    pub fn describe(&self) -> String {
        match &self.source {
            Some(source) => format!("{}#{}", source.original_url, source.attr_path),
            None => self.names().into_iter().collect::<Vec<_>>().join(", "),
        }
    }

    /// The versions of its store paths as `nix profile history` shows them.
    pub fn versions(&self) -> String {
        let versions: BTreeSet<String> =
            self.store_paths.iter().map(|path| parse_drv_name(path.name()).1.to_string()).collect();
        show_versions(&versions)
    }
}

/// `parseDrvName`: the name ends at the first `-` followed by something other
/// than an ASCII letter; the version is what follows.
pub fn parse_drv_name(full_name: &str) -> (&str, &str) {
    let bytes = full_name.as_bytes();
    for index in 0..bytes.len() {
        if bytes[index] == b'-' && index + 1 < bytes.len() && !bytes[index + 1].is_ascii_alphabetic() {
            return (&full_name[..index], &full_name[index + 1..]);
        }
    }
    (full_name, "")
}

/// A set of versions as CppNix's `showVersions` prints it: `∅` for none, `ε`
/// for the empty version, otherwise sorted and joined with `, `.
pub fn show_versions(versions: &BTreeSet<String>) -> String {
    if versions.is_empty() {
        return "∅".to_string();
    }
    let shown: BTreeSet<&str> = versions.iter().map(|v| if v.is_empty() { "ε" } else { v.as_str() }).collect();
    shown.into_iter().collect::<Vec<_>>().join(", ")
}

/// Why a `manifest.json` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("profile manifest '{path}' has unsupported version {version}")]
    UnsupportedVersion { path: String, version: i64 },
    #[error("profile manifest '{path}' is malformed: {reason}")]
    Malformed { path: String, reason: String },
}

/// The elements of a profile, in order (CppNix's `ProfileManifest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileManifest {
    pub elements: Vec<ProfileElement>,
}

impl ProfileManifest {
    /// Parses `manifest.json`; `path` names it in errors.
    pub fn parse(text: &[u8], store_dir: &StoreDir, path: &Path) -> Result<ProfileManifest, ManifestError> {
        let shown = path.display().to_string();
        let malformed = |reason: String| ManifestError::Malformed { path: shown.clone(), reason };
        let json: Value = serde_json::from_slice(text).map_err(|e| malformed(e.to_string()))?;
        let version = match json.get("version") {
            None => 0,
            Some(v) => v.as_i64().ok_or_else(|| malformed("'version' is not a number".into()))?,
        };
        let (url_key, original_url_key) = match version {
            1 => ("uri", "originalUri"),
            2 | 3 => ("url", "originalUrl"),
            _ => return Err(ManifestError::UnsupportedVersion { path: shown, version }),
        };
        let elements: Vec<&Value> = match (version, json.get("elements")) {
            (3, Some(Value::Object(map))) => map.values().collect(),
            (3, None) => Vec::new(),
            (_, Some(Value::Array(items))) => items.iter().collect(),
            (_, None) => Vec::new(),
            _ => return Err(malformed("'elements' has the wrong type".into())),
        };
        let mut manifest = ProfileManifest::default();
        for element in elements {
            let object = element.as_object().ok_or_else(|| malformed("an element is not an object".into()))?;
            let mut store_paths = BTreeSet::new();
            let paths = object
                .get("storePaths")
                .and_then(Value::as_array)
                .ok_or_else(|| malformed("an element lacks 'storePaths'".into()))?;
            for printed in paths {
                let printed = printed.as_str().ok_or_else(|| malformed("a store path is not a string".into()))?;
                let store_path = store_dir.parse_path(printed).map_err(|e| malformed(e.to_string()))?;
                store_paths.insert(store_path);
            }
            let active = match object.get("active") {
                Some(Value::Bool(active)) => *active,
                // Version 3 may leave it out; CppNix 2.8 requires it in 1 and 2.
                None if version == 3 => true,
                _ => return Err(malformed("an element lacks 'active'".into())),
            };
            let string = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or("").to_string();
            // As CppNix: an element has a source when its URL is non-empty.
            let source = if string(url_key).is_empty() {
                None
            } else {
                Some(ProfileElementSource {
                    original_url: string(original_url_key),
                    url: string(url_key),
                    attr_path: string("attrPath"),
                })
            };
            manifest.elements.push(ProfileElement { store_paths, source, active });
        }
        Ok(manifest)
    }

    /// The manifest as CppNix 2.8 writes it: version 2, keys sorted, compact.
    pub fn to_json(&self, store_dir: &StoreDir) -> String {
        let elements: Vec<Value> = self
            .elements
            .iter()
            .map(|element| {
                let mut object = Map::new();
                let paths = element.store_paths.iter().map(|p| Value::String(store_dir.print_path(p))).collect();
                object.insert("storePaths".into(), Value::Array(paths));
                object.insert("active".into(), Value::Bool(element.active));
                if let Some(source) = &element.source {
                    object.insert("originalUrl".into(), Value::String(source.original_url.clone()));
                    object.insert("url".into(), Value::String(source.url.clone()));
                    object.insert("attrPath".into(), Value::String(source.attr_path.clone()));
                }
                Value::Object(object)
            })
            .collect();
        let mut top = Map::new();
        top.insert("version".into(), Value::from(2));
        top.insert("elements".into(), Value::Array(elements));
        // serde_json's map is sorted by key (no `preserve_order`), as nlohmann's.
        Value::Object(top).to_string()
    }

    /// The store paths to link into the profile (those of active elements, in
    /// element order) and the references of the profile path (all elements').
    pub fn packages_and_references(&self) -> (Vec<StorePath>, BTreeSet<StorePath>) {
        let mut packages = Vec::new();
        let mut references = BTreeSet::new();
        for element in &self.elements {
            for path in &element.store_paths {
                if element.active {
                    packages.push(path.clone());
                }
                references.insert(path.clone());
            }
        }
        (packages, references)
    }

    /// The lines `nix profile history` prints for the step from `previous` to
    /// `self` (CppNix's `printDiff`): elements matched by `describe()`, each
    /// line `<indent><name>: <old versions> -> <new versions>`, or
    /// `<indent>No changes.`.
    pub fn diff_lines(previous: &ProfileManifest, current: &ProfileManifest, indent: &str) -> Vec<String> {
        fn sorted(manifest: &ProfileManifest) -> Vec<(String, &ProfileElement)> {
            let mut keyed: Vec<(String, &ProfileElement)> =
                manifest.elements.iter().map(|e| (e.describe(), e)).collect();
            keyed.sort_by(|a, b| (&a.0, &a.1.store_paths).cmp(&(&b.0, &b.1.store_paths)));
            keyed
        }
        let before = sorted(previous);
        let after = sorted(current);
        let (mut i, mut j) = (0, 0);
        let mut lines = Vec::new();
        while i < before.len() || j < after.len() {
            if j < after.len() && (i == before.len() || before[i].0 > after[j].0) {
                lines.push(format!("{indent}{}: ∅ -> {}", after[j].0, after[j].1.versions()));
                j += 1;
            } else if i < before.len() && (j == after.len() || before[i].0 < after[j].0) {
                lines.push(format!("{indent}{}: {} -> ∅", before[i].0, before[i].1.versions()));
                i += 1;
            } else {
                let (v1, v2) = (before[i].1.versions(), after[j].1.versions());
                if v1 != v2 {
                    lines.push(format!("{indent}{}: {v1} -> {v2}", before[i].0));
                }
                i += 1;
                j += 1;
            }
        }
        if lines.is_empty() {
            lines.push(format!("{indent}No changes."));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_dir() -> StoreDir {
        StoreDir::new("/nix/store").expect("store dir")
    }

    // Written by CppNix 2.8's `nix profile install` of two store paths.
    const CPPNIX_V2: &str = r#"{"elements":[{"active":true,"storePaths":["/nix/store/lh4p7m0i5bwcincjzxl7i46gjsng0zxc-hello-1.0"]},{"active":true,"storePaths":["/nix/store/d46kr0vqf1sa3xxg6qkj6cs8c8kaw7jj-foo-2.3"]}],"version":2}"#;

    #[test]
    fn version_2_round_trips_byte_for_byte() {
        let manifest = ProfileManifest::parse(CPPNIX_V2.as_bytes(), &store_dir(), Path::new("m")).unwrap();
        assert_eq!(manifest.elements.len(), 2);
        assert_eq!(manifest.elements[0].describe(), "hello");
        assert_eq!(manifest.elements[1].versions(), "2.3");
        assert_eq!(manifest.to_json(&store_dir()), CPPNIX_V2);
    }

    #[test]
    fn version_1_and_3_are_read_and_sources_kept() {
        let v1 = r#"{"version":1,"elements":[{"active":false,"attrPath":"packages.x86_64-linux.hello","originalUri":"flake:nixpkgs","uri":"github:NixOS/nixpkgs/abc","storePaths":["/nix/store/lh4p7m0i5bwcincjzxl7i46gjsng0zxc-hello-1.0"]}]}"#;
        let manifest = ProfileManifest::parse(v1.as_bytes(), &store_dir(), Path::new("m")).unwrap();
        let element = &manifest.elements[0];
        assert!(!element.active);
        assert_eq!(element.describe(), "flake:nixpkgs#packages.x86_64-linux.hello");
        let written = manifest.to_json(&store_dir());
        assert!(
            written.contains(r#""attrPath":"packages.x86_64-linux.hello","originalUrl":"flake:nixpkgs","storePaths""#)
        );
        let v3 = r#"{"version":3,"elements":{"hello":{"active":true,"priority":5,"storePaths":["/nix/store/lh4p7m0i5bwcincjzxl7i46gjsng0zxc-hello-1.0"],"outputs":null}}}"#;
        let manifest = ProfileManifest::parse(v3.as_bytes(), &store_dir(), Path::new("m")).unwrap();
        assert_eq!(manifest.elements.len(), 1);
        assert!(manifest.elements[0].source.is_none());
    }

    #[test]
    fn bad_manifests_are_errors() {
        let err =
            ProfileManifest::parse(br#"{"version":7,"elements":[]}"#, &store_dir(), Path::new("/p/manifest.json"));
        assert_eq!(err.unwrap_err().to_string(), "profile manifest '/p/manifest.json' has unsupported version 7");
        assert!(ProfileManifest::parse(b"{", &store_dir(), Path::new("m")).is_err());
        assert!(
            ProfileManifest::parse(
                br#"{"version":2,"elements":[{"storePaths":["/tmp/x"],"active":true}]}"#,
                &store_dir(),
                Path::new("m")
            )
            .is_err()
        );
    }

    #[test]
    fn history_lines_merge_by_description() {
        // Recorded from CppNix 2.8's `nix profile history` (version 1 -> 2).
        let parse = |json: &str| ProfileManifest::parse(json.as_bytes(), &store_dir(), Path::new("m")).unwrap();
        let before = parse(CPPNIX_V2);
        let after = parse(
            r#"{"elements":[{"active":true,"storePaths":["/nix/store/d46kr0vqf1sa3xxg6qkj6cs8c8kaw7jj-foo-2.3"]},{"active":true,"storePaths":["/nix/store/5jq9xyhg7zbkr1yrl3r2cbyah5j088xf-big-2.0"]},{"active":true,"storePaths":["/nix/store/a8c4w4xdp03gd0sxwv4f1mlz5kgy4wsd-x-lib64"]}],"version":2}"#,
        );
        assert_eq!(
            ProfileManifest::diff_lines(&before, &after, "  "),
            vec!["  big: ∅ -> 2.0", "  hello: 1.0 -> ∅", "  x-lib64: ∅ -> ε"]
        );
        assert_eq!(ProfileManifest::diff_lines(&after, &after, ""), vec!["No changes."]);
    }

    #[test]
    fn versions_and_names() {
        assert_eq!(parse_drv_name("hello-1.0"), ("hello", "1.0"));
        assert_eq!(parse_drv_name("x-lib64"), ("x-lib64", ""));
        assert_eq!(parse_drv_name("foo-bar-2"), ("foo-bar", "2"));
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(show_versions(&set(&[])), "∅");
        assert_eq!(show_versions(&set(&["", "2.0", "1.0"])), "1.0, 2.0, ε");
    }
}
