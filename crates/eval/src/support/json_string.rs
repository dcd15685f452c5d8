//! Quoting strings and attribute names the way CppNix prints a value
//! (`nix-instantiate --eval`). JSON strings are written by `print::json_string`.
//!
//! Strings are bytes; the output is bytes too (non-ASCII passes through).

/// Appends `text` as a Nix string literal, as `nix-instantiate --eval`
/// prints it: `\"`, `\\`, `\n`, `\r`, `\t`, and `\$` before `{`; every other
/// byte verbatim.
pub fn write_nix_string(out: &mut Vec<u8>, text: &[u8]) {
    /// The bytes a Nix string literal may have to escape (`$` only before `{`).
    const SPECIAL: [bool; 256] = {
        let mut table = [false; 256];
        table[b'"' as usize] = true;
        table[b'\\' as usize] = true;
        table[b'\n' as usize] = true;
        table[b'\r' as usize] = true;
        table[b'\t' as usize] = true;
        table[b'$' as usize] = true;
        table
    };
    out.reserve(text.len() + 2);
    out.push(b'"');
    // Runs of bytes that stand for themselves are copied whole.
    let (mut run_start, mut index) = (0, 0);
    while index < text.len() {
        if !SPECIAL[text[index] as usize] {
            index += 1;
            continue;
        }
        let escape: &[u8] = match text[index] {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ if text.get(index + 1) == Some(&b'{') => b"\\$",
            _ => {
                index += 1;
                continue;
            }
        };
        out.extend_from_slice(&text[run_start..index]);
        out.extend_from_slice(escape);
        index += 1;
        run_start = index;
    }
    out.extend_from_slice(&text[run_start..]);
    out.push(b'"');
}

/// Whether current CppNix prints a name bare: it starts with a letter or `_`,
/// continues with letters, digits, `_`, `'` or `-`, and is not a keyword
/// (CppNix 2.8 quoted `if` alone).
pub fn is_bare_attr_name(name: &[u8]) -> bool {
    let Some(&first) = name.first() else { return false };
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return false;
    }
    !is_reserved_keyword(name) && name.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'\'' | b'-'))
}

/// The keywords current CppNix quotes when it prints a name (`or` is not one:
/// it can be a name).
fn is_reserved_keyword(name: &[u8]) -> bool {
    matches!(name, b"if" | b"then" | b"else" | b"assert" | b"with" | b"let" | b"in" | b"rec" | b"inherit")
}

/// Appends a name (attribute, variable, formal) as current CppNix prints it
/// (`printIdentifier`): bare when it is an identifier, otherwise as a string
/// literal, where `$` is escaped only before `{` (CppNix 2.8 escaped every `$`).
pub fn write_attr_name(out: &mut Vec<u8>, name: &[u8]) {
    if is_bare_attr_name(name) {
        out.extend_from_slice(name);
        return;
    }
    write_nix_string(out, name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix_string_printing_matches_cppnix() {
        // Recorded from CppNix 2.8: [ "a${b}$" "$${" "$" "\n\r\t" "\"" "\\" ].
        let cases: &[(&[u8], &str)] = &[
            (b"a${b}$", r#""a\${b}$""#),
            (b"$${", r#""$\${""#),
            (b"$", r#""$""#),
            (b"\n\r\t", r#""\n\r\t""#),
            (b"\"", r#""\"""#),
            (b"\\", r#""\\""#),
        ];
        for (input, expected) in cases {
            let mut out = Vec::new();
            write_nix_string(&mut out, input);
            assert_eq!(String::from_utf8(out).unwrap(), *expected);
        }
    }

    #[test]
    fn attr_names_as_current_cppnix_prints_identifiers() {
        // Current CppNix's printIdentifier: keywords are quoted (2.8 quoted
        // `if` alone), `or` and builtin names are not.
        let bare: &[&[u8]] = &[b"_x", b"a-", b"x'", b"or", b"__curPos", b"null", b"true"];
        let quoted: &[&[u8]] = &[
            b"\n", b"${", b"-a", b"1a", b"a.b", "é".as_bytes(), b"if", b"let", b"rec", b"then", b"else", b"assert",
            b"in", b"with", b"inherit", b"", b"quoted key", b"file-b.txt",
        ];
        for name in bare {
            assert!(is_bare_attr_name(name), "{:?}", String::from_utf8_lossy(name));
        }
        for name in quoted {
            assert!(!is_bare_attr_name(name), "{:?}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn quoted_attr_names_escape_dollar_only_before_brace() {
        // As string literals (printLiteralString); CppNix 2.8 escaped every `$`.
        let cases: &[(&[u8], &str)] = &[
            (b"$a", r#""$a""#),
            (b"a$", r#""a$""#),
            (b"$", r#""$""#),
            (b"${", r#""\${""#),
            (b"q\"\n", r#""q\"\n""#),
            (b"let", r#""let""#),
            (b"plain", "plain"),
        ];
        for (name, expected) in cases {
            let mut out = Vec::new();
            write_attr_name(&mut out, name);
            assert_eq!(String::from_utf8(out).unwrap(), *expected);
        }
    }
}
