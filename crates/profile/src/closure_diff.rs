//! What changed between two closures, as CppNix's `printClosureDiff`
//! (`src/nix/diff-closures.cc`) computes and prints it: paths are grouped by
//! package name and version, and a package is reported when versions were
//! added or removed or its total NAR size moved by at least 8 KiB. Shared by
//! `nix profile diff-closures` and (later) `nix store diff-closures`.
//!
//! Assumptions: both top-level paths and their closures are valid in the store.

use std::collections::{BTreeMap, BTreeSet};

use nivis_formats::StorePath;
use nivis_store::{ClosureOptions, Store, StoreError, compute_closure};

use crate::manifest_json::{parse_drv_name, show_versions};

/// Package name -> version -> store paths in the closure.
type GroupedPaths = BTreeMap<String, BTreeMap<String, BTreeSet<StorePath>>>;

/// One package whose versions or size changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosureChange {
    pub name: String,
    pub removed: BTreeSet<String>,
    pub added: BTreeSet<String>,
    /// Bytes (NAR size) after minus before.
    pub size_delta: i64,
}

/// Strips an output name from a store path name, as CppNix does with the
/// regex `(.*)-([a-z]+|lib32|lib64)` (greedy, so only the last `-` counts;
/// it cannot tell an output name from a version suffix like `unstable`).
fn strip_output_name(name: &str) -> &str {
    if let Some(dash) = name.rfind('-') {
        let suffix = &name[dash + 1..];
        let is_output = (!suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_lowercase()))
            || suffix == "lib32"
            || suffix == "lib64";
        if is_output {
            return &name[..dash];
        }
    }
    name
}

fn closure_info(store: &dyn Store, top: &StorePath) -> Result<GroupedPaths, StoreError> {
    let closure = compute_closure(store, &[top.clone()].into_iter().collect(), ClosureOptions::default())?;
    let mut grouped = GroupedPaths::new();
    for path in closure {
        let (name, version) = parse_drv_name(strip_output_name(path.name()));
        grouped.entry(name.to_string()).or_default().entry(version.to_string()).or_default().insert(path);
    }
    Ok(grouped)
}

/// The changes from the closure of `before` to that of `after`, by package
/// name in byte order.
pub fn diff_closures(
    store: &dyn Store,
    before: &StorePath,
    after: &StorePath,
) -> Result<Vec<ClosureChange>, StoreError> {
    let before_closure = closure_info(store, before)?;
    let after_closure = closure_info(store, after)?;
    let names: BTreeSet<&String> = before_closure.keys().chain(after_closure.keys()).collect();
    let empty = BTreeMap::new();
    let total_size = |versions: &BTreeMap<String, BTreeSet<StorePath>>| -> Result<u64, StoreError> {
        let mut sum = 0;
        for path in versions.values().flatten() {
            let info =
                store.query_path_info(path)?.ok_or_else(|| StoreError::InvalidPath(store.print_store_path(path)))?;
            sum += info.nar_size;
        }
        Ok(sum)
    };
    let mut changes = Vec::new();
    for name in names {
        let before_versions = before_closure.get(name).unwrap_or(&empty);
        let after_versions = after_closure.get(name).unwrap_or(&empty);
        let size_delta = total_size(after_versions)? as i64 - total_size(before_versions)? as i64;
        let removed: BTreeSet<String> =
            before_versions.keys().filter(|v| !after_versions.contains_key(*v)).cloned().collect();
        let added: BTreeSet<String> =
            after_versions.keys().filter(|v| !before_versions.contains_key(*v)).cloned().collect();
        if size_delta.abs() >= 8 * 1024 || !removed.is_empty() || !added.is_empty() {
            changes.push(ClosureChange { name: name.clone(), removed, added, size_delta });
        }
    }
    Ok(changes)
}

/// The lines CppNix prints for `changes`: `<indent><name>: <removed> →
/// <added>, <±N.N KiB>`, the size in red (growth) or green when `colour`.
pub fn format_closure_diff(changes: &[ClosureChange], indent: &str, colour: bool) -> Vec<String> {
    changes
        .iter()
        .map(|change| {
            let mut items = Vec::new();
            if !change.removed.is_empty() || !change.added.is_empty() {
                items.push(format!("{} → {}", show_versions(&change.removed), show_versions(&change.added)));
            }
            if change.size_delta.abs() >= 8 * 1024 {
                let kib = format!("{:+.1} KiB", change.size_delta as f64 / 1024.0);
                if colour {
                    let start = if change.size_delta > 0 { "\x1b[31;1m" } else { "\x1b[32;1m" };
                    items.push(format!("{start}{kib}\x1b[0m"));
                } else {
                    items.push(kib);
                }
            }
            format!("{indent}{}: {}", change.name, items.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_are_stripped_as_cppnix() {
        assert_eq!(strip_output_name("tool-man"), "tool");
        assert_eq!(strip_output_name("x-lib64"), "x");
        assert_eq!(strip_output_name("hello-2.10"), "hello-2.10");
        assert_eq!(strip_output_name("foo-1.0-dev"), "foo-1.0");
        assert_eq!(strip_output_name("profile"), "profile");
        assert_eq!(strip_output_name("a-b-c1"), "a-b-c1");
    }

    #[test]
    fn lines_are_formatted_as_cppnix() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let changes = vec![
            ClosureChange { name: "big".into(), removed: set(&["1.0"]), added: set(&[]), size_delta: -20480 },
            ClosureChange { name: "x".into(), removed: set(&[]), added: set(&[""]), size_delta: 10 },
        ];
        assert_eq!(format_closure_diff(&changes, "  ", false), vec!["  big: 1.0 → ∅, -20.0 KiB", "  x: ∅ → ε"]);
        assert_eq!(format_closure_diff(&changes[..1], "", true), vec!["big: 1.0 → ∅, \x1b[32;1m-20.0 KiB\x1b[0m"]);
    }
}
