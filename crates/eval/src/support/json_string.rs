//! Quoting strings the way CppNix writes them: inside `builtins.toJSON`
//! output, and when printing a value (`nix-instantiate --eval`).
//!
//! Strings are bytes; the output is bytes too (non-ASCII passes through).

/// Which CppNix's `builtins.toJSON` to imitate for string escapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonFlavor {
    /// CppNix 2.8's own JSON writer: `\"`, `\\`, `\n`, `\r`, `\t`, every other
    /// byte below 0x20 as `\u00xx`; any other byte verbatim (even invalid
    /// UTF-8).
    CppNix2_8,
    /// Current CppNix (nlohmann::json): additionally `\b` and `\f` short forms;
    /// invalid UTF-8 is an error.
    Current,
}

/// The string is not valid UTF-8, which current CppNix's JSON writer rejects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid UTF-8 byte at index {index}: 0x{byte:02X}")]
pub struct InvalidUtf8 {
    pub index: usize,
    pub byte: u8,
}

/// Appends `text` as a JSON string literal (with quotes) to `out`.
pub fn write_json_string(out: &mut Vec<u8>, text: &[u8], flavor: JsonFlavor) -> Result<(), InvalidUtf8> {
    if flavor == JsonFlavor::Current
        && let Err(error) = std::str::from_utf8(text)
    {
        let index = error.valid_up_to();
        return Err(InvalidUtf8 { index, byte: text[index] });
    }
    out.push(b'"');
    for &byte in text {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 if flavor == JsonFlavor::Current => out.extend_from_slice(b"\\b"),
            0x0c if flavor == JsonFlavor::Current => out.extend_from_slice(b"\\f"),
            0..0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 15)]);
            }
            _ => out.push(byte),
        }
    }
    out.push(b'"');
    Ok(())
}

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

    fn json(text: &[u8], flavor: JsonFlavor) -> String {
        let mut out = Vec::new();
        write_json_string(&mut out, text, flavor).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_escapes_match_cppnix_2_8() {
        // Recorded from CppNix 2.8: toJSON of "\u0008\u000c\u0001\u001f\u007f\u00ff\u2028😀".
        let input = "\u{8}\u{c}\u{1}\u{1f}\u{7f}\u{ff}\u{2028}😀";
        assert_eq!(json(input.as_bytes(), JsonFlavor::CppNix2_8), "\"\\u0008\\u000c\\u0001\\u001f\u{7f}\u{ff}\u{2028}😀\"");
        // From tests/lang/eval-okay-builtin-tojson-escapes.
        assert_eq!(
            json(b"quote\"back\\slash\nnl\ttab\rcr${x}/", JsonFlavor::CppNix2_8),
            r#""quote\"back\\slash\nnl\ttab\rcr${x}/""#
        );
    }

    #[test]
    fn json_current_uses_short_forms_and_rejects_invalid_utf8() {
        assert_eq!(json(b"\x08\x0c\x01", JsonFlavor::Current), r#""\b\f\u0001""#);
        let mut out = Vec::new();
        assert_eq!(
            write_json_string(&mut out, b"ab\xff", JsonFlavor::Current),
            Err(InvalidUtf8 { index: 2, byte: 0xff })
        );
        let mut out = Vec::new();
        write_json_string(&mut out, b"ab\xff", JsonFlavor::CppNix2_8).unwrap();
        assert_eq!(out, b"\"ab\xff\"");
    }

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
