//! Reads the output paths out of a `.drv` file (ATerm), which is all the store
//! needs from a derivation when registering it: `Derive([("out","/nix/store/…","",""),…],…)`.
//! The full ATerm parser lives in nivis-formats; this only reads the first list so
//! that registration does not depend on the whole derivation being understood.

use crate::error::StoreError;

fn bad(why: &str) -> StoreError {
    StoreError::BadInput(format!("error parsing derivation: {why}"))
}

/// Reads a quoted ATerm string at the start of `s`, returning it and the rest.
fn read_string(s: &str) -> Result<(String, &str), StoreError> {
    let s = s.strip_prefix('"').ok_or_else(|| bad("expected a string"))?;
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, 't')) => out.push('\t'),
                Some((_, other)) => out.push(other),
                None => return Err(bad("unterminated string")),
            },
            other => out.push(other),
        }
    }
    Err(bad("unterminated string"))
}

/// The (output name, output path) pairs of a derivation; the path is empty for
/// outputs whose path is not known in advance (floating content-addressed).
pub fn parse_output_paths(text: &str) -> Result<Vec<(String, String)>, StoreError> {
    let mut rest = text.strip_prefix("Derive([").ok_or_else(|| bad("expected 'Derive(['"))?;
    let mut outputs = Vec::new();
    if let Some(after) = rest.strip_prefix(']') {
        let _ = after;
        return Ok(outputs);
    }
    loop {
        rest = rest.strip_prefix('(').ok_or_else(|| bad("expected '('"))?;
        let (name, r) = read_string(rest)?;
        let r = r.strip_prefix(',').ok_or_else(|| bad("expected ','"))?;
        let (path, r) = read_string(r)?;
        // Skip the hash algorithm and hash.
        let r = r.strip_prefix(',').ok_or_else(|| bad("expected ','"))?;
        let (_, r) = read_string(r)?;
        let r = r.strip_prefix(',').ok_or_else(|| bad("expected ','"))?;
        let (_, r) = read_string(r)?;
        rest = r.strip_prefix(')').ok_or_else(|| bad("expected ')'"))?;
        outputs.push((name, path));
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if rest.starts_with(']') {
            return Ok(outputs);
        } else {
            return Err(bad("expected ',' or ']'"));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_outputs() {
        let text = r#"Derive([("dev","/nix/store/a-x-dev","",""),("out","/nix/store/b-x","","")],[],[],"x86_64-linux","/bin/sh",[],[])"#;
        let outputs = super::parse_output_paths(text).unwrap();
        assert_eq!(outputs, vec![
            ("dev".to_string(), "/nix/store/a-x-dev".to_string()),
            ("out".to_string(), "/nix/store/b-x".to_string())
        ]);
        assert!(super::parse_output_paths("Derive([(").is_err());
    }
}
