//! Version strings as CppNix compares them: `builtins.splitVersion`,
//! `builtins.compareVersions` and `builtins.parseDrvName` (also used by
//! `nix-env` to pick the newest package).
//!
//! A version is a sequence of components separated by `.` or `-`; a
//! component is a maximal run of ASCII digits or a maximal run of other
//! non-separator bytes (so `1a2` is `1`, `a`, `2`). Components compare as
//! integers when both parse as a C `int` (so more than ten digits do *not*
//! count as a number, exactly like CppNix's `string2Int<int>`); otherwise the
//! empty component is older than a number, `pre` is older than anything but
//! `pre`, a string is older than a number, and two strings compare bytewise.

use std::cmp::Ordering;

/// The next component of `version` from `*position`, skipping separators;
/// empty at the end.
fn next_component<'v>(version: &'v [u8], position: &mut usize) -> &'v [u8] {
    while *position < version.len() && matches!(version[*position], b'.' | b'-') {
        *position += 1;
    }
    let start = *position;
    if start == version.len() {
        return &version[start..start];
    }
    if version[start].is_ascii_digit() {
        while *position < version.len() && version[*position].is_ascii_digit() {
            *position += 1;
        }
    } else {
        while *position < version.len() && !matches!(version[*position], b'0'..=b'9' | b'.' | b'-') {
            *position += 1;
        }
    }
    &version[start..*position]
}

/// `builtins.splitVersion`.
pub fn split_version(version: &[u8]) -> Vec<&[u8]> {
    let mut position = 0;
    let mut components = Vec::new();
    while position < version.len() {
        let component = next_component(version, &mut position);
        if component.is_empty() {
            break;
        }
        components.push(component);
    }
    components
}

/// A component as a C `int`, if it is one.
fn as_int(component: &[u8]) -> Option<i32> {
    if component.is_empty() || !component.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(component).ok()?.parse().ok()
}

fn component_less(c1: &[u8], c2: &[u8]) -> bool {
    let n1 = as_int(c1);
    let n2 = as_int(c2);
    match (n1, n2) {
        (Some(n1), Some(n2)) => n1 < n2,
        _ if c1.is_empty() && n2.is_some() => true,
        _ if c1 == b"pre" && c2 != b"pre" => true,
        _ if c2 == b"pre" => false,
        // CppNix assumes `2.3a` < `2.3.1`.
        (_, Some(_)) => true,
        (Some(_), _) => false,
        _ => c1 < c2,
    }
}

/// `builtins.compareVersions`.
pub fn compare_versions(v1: &[u8], v2: &[u8]) -> Ordering {
    let (mut p1, mut p2) = (0, 0);
    while p1 < v1.len() || p2 < v2.len() {
        let c1 = next_component(v1, &mut p1);
        let c2 = next_component(v2, &mut p2);
        if component_less(c1, c2) {
            return Ordering::Less;
        }
        if component_less(c2, c1) {
            return Ordering::Greater;
        }
    }
    Ordering::Equal
}

/// `builtins.parseDrvName`: the name ends at the first `-` that is followed
/// by a byte that is not an ASCII letter; the version is what follows it.
pub fn parse_drv_name(full_name: &[u8]) -> (&[u8], &[u8]) {
    for index in 0..full_name.len() {
        if full_name[index] == b'-' && index + 1 < full_name.len() && !full_name[index + 1].is_ascii_alphabetic() {
            return (&full_name[..index], &full_name[index + 1..]);
        }
    }
    (full_name, b"")
}

#[cfg(test)]
mod tests {
    //! Expected values recorded from CppNix 2.8 (tests/lang has the same
    //! cases as language tests).
    use super::*;

    #[test]
    fn compare_versions_matches_cppnix() {
        let cases: &[(&str, &str, i32)] = &[
            ("1.0", "2.3", -1), ("2.1", "2.3", -1), ("2.3", "2.3", 0), ("2.5", "2.3", 1), ("3.1", "2.3", 1),
            ("2.3.1", "2.3", 1), ("2.3.1", "2.3a", 1), ("2.3pre1", "2.3", -1), ("2.3pre3", "2.3pre12", -1),
            ("2.3a", "2.3c", -1), ("2.3pre1", "2.3c", -1), ("2.3pre1", "2.3q", -1), ("1.0", "1.00", 0),
            ("1.01", "1.1", 0), ("", "1", -1), ("", "", 0), ("a", "b", -1), ("1.2.3", "1.2-3", 0), ("pre", "1", -1),
            ("2.3pre", "2.3", -1), ("1a", "1", 1), ("1", "1a", -1), ("10", "9", 1), ("1.0rc1", "1.0", 1),
            ("1..2", "1.2", 0), ("x", "1", -1), ("1.0", "1.0.0", -1),
            ("99999999999", "2", -1), ("2147483648", "2147483647", -1),
        ];
        for (v1, v2, expected) in cases {
            let actual = match compare_versions(v1.as_bytes(), v2.as_bytes()) {
                Ordering::Less => -1,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            };
            assert_eq!(actual, *expected, "compareVersions {v1:?} {v2:?}");
        }
    }

    #[test]
    fn split_version_matches_cppnix() {
        let cases: &[(&str, &[&str])] = &[
            ("1.2.3", &["1", "2", "3"]), ("1.2pre3", &["1", "2", "pre", "3"]), ("2.3a-b_c", &["2", "3", "a", "b_c"]),
            ("", &[]), ("..a..", &["a"]), ("1a2b", &["1", "a", "2", "b"]), ("10.0.0-rc1", &["10", "0", "0", "rc", "1"]),
            ("x", &["x"]), ("1", &["1"]), ("...", &[]),
        ];
        for (version, expected) in cases {
            let actual: Vec<&[u8]> = split_version(version.as_bytes());
            let expected: Vec<&[u8]> = expected.iter().map(|s| s.as_bytes()).collect();
            assert_eq!(actual, expected, "splitVersion {version:?}");
        }
    }

    #[test]
    fn parse_drv_name_matches_cppnix() {
        let cases = [
            ("hello-2.10", "hello", "2.10"), ("nix-2.8.0pre1", "nix", "2.8.0pre1"), ("foo", "foo", ""),
            ("foo-bar-1.0", "foo-bar", "1.0"), ("foo-bar", "foo-bar", ""), ("a-1-2", "a", "1-2"), ("-1.0", "", "1.0"),
            ("foo-", "foo-", ""), ("x-y-z", "x-y-z", ""), ("perl-Foo-Bar-1.2", "perl-Foo-Bar", "1.2"), ("a-b2", "a-b2", ""),
            ("foo-é", "foo", "é"), ("foo-Ébar", "foo", "Ébar"),
        ];
        for (full, name, version) in cases {
            assert_eq!(parse_drv_name(full.as_bytes()), (name.as_bytes(), version.as_bytes()), "parseDrvName {full:?}");
        }
    }

    /// Random version strings: CppNix 2.8 and this module must agree on
    /// compareVersions, splitVersion and parseDrvName.
    #[test]
    fn random_versions_agree_with_cppnix() {
        let nix_instantiate = std::path::Path::new("/usr/bin/nix-instantiate");
        if !nix_instantiate.exists() {
            eprintln!("skipped: /usr/bin/nix-instantiate not installed");
            return;
        }
        const PIECES: &[&str] = &["0", "1", "2", "10", "09", "2147483648", ".", "-", "a", "b", "pre", "rc", "_", "X", ""];
        let mut state: u64 = 0xfeed;
        let mut next = |bound: usize| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) % bound as u64) as usize
        };
        let mut versions = Vec::new();
        for _ in 0..300 {
            let version: String = (0..next(6)).map(|_| PIECES[next(PIECES.len())]).collect();
            versions.push(version);
        }
        let mut expression = String::from("with builtins; [\n");
        let mut ours = String::from("[ ");
        for pair in versions.chunks(2) {
            let (v1, v2) = (&pair[0], &pair[1]);
            expression.push_str(&format!("(compareVersions \"{v1}\" \"{v2}\") (splitVersion \"{v1}\") (parseDrvName \"{v1}-{v2}\")\n"));
            let ordering = match compare_versions(v1.as_bytes(), v2.as_bytes()) {
                Ordering::Less => "-1",
                Ordering::Equal => "0",
                Ordering::Greater => "1",
            };
            let components: Vec<String> =
                split_version(v1.as_bytes()).iter().map(|c| format!("\"{}\" ", String::from_utf8_lossy(c))).collect();
            let full = format!("{v1}-{v2}");
            let (name, version) = parse_drv_name(full.as_bytes());
            ours.push_str(&format!(
                "{ordering} [ {}] {{ name = \"{}\"; version = \"{}\"; }} ",
                components.concat(),
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(version)
            ));
        }
        expression.push(']');
        ours.push(']');
        let output = std::process::Command::new(nix_instantiate)
            .args(["--eval", "--strict", "-E", &expression])
            .output()
            .expect("running nix-instantiate");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(ours, String::from_utf8_lossy(&output.stdout).trim_end());
    }
}
