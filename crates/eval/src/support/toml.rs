//! `builtins.fromTOML`: TOML 1.0 text to a small neutral tree that the
//! evaluator maps to Nix values.
//!
//! Uses the `toml` crate 0.8 (TOML 1.0; 1.x would accept TOML 1.1 documents
//! that CppNix rejects). Dates and times are kept as their TOML text in
//! [`TomlValue::Datetime`]: CppNix 2.8 rejects them ("Dates and times are not
//! supported"), current CppNix does too unless the experimental feature
//! `parse-toml-timestamps` turns them into `{ _type = "timestamp"; value =
//! TEXT; }`; the caller chooses.
//!
//! Known differences from CppNix 2.8's toml11 (tests/lang has a case for
//! each, listed in KNOWN-FAILURES): a float literal too large for a double
//! is infinity here, the largest double there; toml11 also accepts a `[table]` header after dotted keys defined
//! that table, which TOML 1.0 (and this module) rejects.

/// A TOML value.
#[derive(Debug, Clone, PartialEq)]
pub enum TomlValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    String(String),
    /// An offset or local date-time, local date or local time, as written
    /// in TOML's canonical form.
    Datetime(String),
    Array(Vec<TomlValue>),
    /// Keys in sorted order (Nix attribute sets are sorted anyway).
    Table(Vec<(String, TomlValue)>),
}

/// The document is not valid TOML 1.0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TomlError {
    pub message: String,
}

/// Parses a whole TOML document; the result is always a [`TomlValue::Table`].
pub fn parse(text: &[u8]) -> Result<TomlValue, TomlError> {
    let text = std::str::from_utf8(text).map_err(|error| TomlError { message: format!("invalid UTF-8: {error}") })?;
    let mut text = std::borrow::Cow::Borrowed(text);
    // Each round replaces one out-of-range integer literal by an in-range
    // one, so this ends; the bound is a guard.
    for _ in 0..1000 {
        match text.parse::<toml::Table>() {
            Ok(table) => return Ok(convert_table(table)),
            Err(error) => match saturated_integer(&text, &error) {
                Some(replaced) => text = std::borrow::Cow::Owned(replaced),
                None => return Err(TomlError { message: error.message().to_string() }),
            },
        }
    }
    Err(TomlError { message: "too many out-of-range integers".into() })
}

/// toml11 (CppNix 2.8) reads an out-of-range integer as the nearest i64;
/// the `toml` crate rejects it. If `error` is about such a literal, returns
/// the document with the literal replaced by that i64.
fn saturated_integer(text: &str, error: &toml::de::Error) -> Option<String> {
    if !error.message().contains("too large") && !error.message().contains("too small") {
        return None;
    }
    // The error's span points at the literal's first character only.
    let start = error.span()?.start;
    let bytes = text.as_bytes();
    let mut end = start;
    if matches!(bytes.get(end), Some(b'+' | b'-')) {
        end += 1;
    }
    let digits_start = end;
    while matches!(bytes.get(end), Some(b'0'..=b'9' | b'_')) {
        end += 1;
    }
    if end == digits_start || matches!(bytes.get(end), Some(b'.' | b'e' | b'E' | b'x' | b'o' | b'b')) {
        return None;
    }
    let replacement = if bytes[start] == b'-' { i64::MIN.to_string() } else { i64::MAX.to_string() };
    Some(format!("{}{}{}", &text[..start], replacement, &text[end..]))
}

fn convert_table(table: toml::Table) -> TomlValue {
    let mut entries: Vec<(String, TomlValue)> = table.into_iter().map(|(key, value)| (key, convert(value))).collect();
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    TomlValue::Table(entries)
}

fn convert(value: toml::Value) -> TomlValue {
    match value {
        toml::Value::String(text) => TomlValue::String(text),
        toml::Value::Integer(number) => TomlValue::Int(number),
        toml::Value::Float(number) => TomlValue::Float(number),
        toml::Value::Boolean(flag) => TomlValue::Bool(flag),
        toml::Value::Datetime(datetime) => TomlValue::Datetime(datetime.to_string()),
        toml::Value::Array(items) => TomlValue::Array(items.into_iter().map(convert).collect()),
        toml::Value::Table(table) => convert_table(table),
    }
}

#[cfg(test)]
mod tests {
    //! Expected trees follow the values CppNix 2.8 printed for the same
    //! documents (see tests/lang/eval-okay-builtin-fromtoml*.nix).
    use super::*;

    fn table(entries: &[(&str, TomlValue)]) -> TomlValue {
        TomlValue::Table(entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    #[test]
    fn scalars_tables_and_arrays() {
        let parsed = parse(
            b"title = \"t\"\nint = 42\nneg = -17\nfloat = 3.5\nbool = true\nhex = 0xff\noct = 0o17\nbin = 0b101\n\
              under = 1_000\narr = [1, \"a\"]\n[owner]\nname = \"n\"\n[[items]]\nx = 1\n[[items]]\nx = 2\n",
        )
        .unwrap();
        let expected = table(&[
            ("arr", TomlValue::Array(vec![TomlValue::Int(1), TomlValue::String("a".into())])),
            ("bin", TomlValue::Int(5)),
            ("bool", TomlValue::Bool(true)),
            ("float", TomlValue::Float(3.5)),
            ("hex", TomlValue::Int(255)),
            ("int", TomlValue::Int(42)),
            ("items", TomlValue::Array(vec![table(&[("x", TomlValue::Int(1))]), table(&[("x", TomlValue::Int(2))])])),
            ("neg", TomlValue::Int(-17)),
            ("oct", TomlValue::Int(15)),
            ("owner", table(&[("name", TomlValue::String("n".into()))])),
            ("title", TomlValue::String("t".into())),
            ("under", TomlValue::Int(1000)),
        ]);
        assert_eq!(parsed, expected);
    }

    #[test]
    fn strings_and_special_floats() {
        let parsed = parse(b"basic = \"tab\\there \\u00e9\"\nliteral = 'C:\\path'\nmulti = \"\"\"\nline1\nline2\"\"\"\n\
              lit = '''\nraw \\n line'''\ninf = inf\nmax = 9223372036854775807\n\"\" = \"empty key\"\n")
            .unwrap();
        let TomlValue::Table(entries) = parsed else { panic!("not a table") };
        let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("basic"), TomlValue::String("tab\there é".into()));
        assert_eq!(get("literal"), TomlValue::String("C:\\path".into()));
        assert_eq!(get("multi"), TomlValue::String("line1\nline2".into()));
        assert_eq!(get("lit"), TomlValue::String("raw \\n line".into()));
        assert_eq!(get("inf"), TomlValue::Float(f64::INFINITY));
        assert_eq!(get("max"), TomlValue::Int(i64::MAX));
        assert_eq!(get(""), TomlValue::String("empty key".into()));
    }

    #[test]
    fn datetimes_are_kept_as_text() {
        let parsed = parse(b"a = 1979-05-27T07:32:00Z\nb = 1979-05-27\nc = 07:32:00\n").unwrap();
        assert_eq!(
            parsed,
            table(&[
                ("a", TomlValue::Datetime("1979-05-27T07:32:00Z".into())),
                ("b", TomlValue::Datetime("1979-05-27".into())),
                ("c", TomlValue::Datetime("07:32:00".into())),
            ])
        );
    }

    #[test]
    fn out_of_range_integers_saturate_like_toml11() {
        // CppNix 2.8: fromTOML "a = 9223372036854775808" is { a = 9223372036854775807; }.
        let parsed = parse(b"a = 9223372036854775808\nb = -99999999999999999999\nc = [ 1_000_000_000_000_000_000_000 ]\n").unwrap();
        assert_eq!(
            parsed,
            table(&[
                ("a", TomlValue::Int(i64::MAX)),
                ("b", TomlValue::Int(i64::MIN)),
                ("c", TomlValue::Array(vec![TomlValue::Int(i64::MAX)])),
            ])
        );
    }

    #[test]
    fn invalid_documents_are_errors() {
        // CppNix 2.8 rejects these too (tests/lang/eval-fail-builtin-fromtoml-*).
        for document in [&b"a = "[..], b"a = 1\na = 2", b"[a\n", b"x = [1,,2]", b"\xff = 1"] {
            assert!(parse(document).is_err(), "{:?}", String::from_utf8_lossy(document));
        }
    }
}
