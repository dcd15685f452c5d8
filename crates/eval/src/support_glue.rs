//! Adapters to the pure helpers in [`crate::support`] (written separately and
//! tested against CppNix); where a helper is not there yet, a simpler local
//! version stands in.

/// Translates a POSIX ERE into `regex` crate syntax.
pub fn translate_ere(re: &[u8]) -> Result<String, String> {
    // Bytes outside ASCII are passed through as escapes so the pattern stays valid.
    let mut out = String::with_capacity(re.len());
    let mut i = 0;
    let mut in_bracket = false;
    while i < re.len() {
        let c = re[i];
        if in_bracket {
            if c == b']' && !(out.ends_with('[') || out.ends_with("[^")) {
                in_bracket = false;
                out.push(']');
            } else if c == b'[' && re.get(i + 1) == Some(&b':') {
                let end = re[i..].windows(2).position(|w| w == b":]").map(|j| i + j + 2).unwrap_or(re.len());
                out.push_str(&String::from_utf8_lossy(&re[i..end]));
                i = end;
                continue;
            } else if c == b'\\' || c == b'[' || c == b'&' || c == b'~' || c == b'-' && false {
                out.push('\\');
                out.push(c as char);
            } else if c >= 0x80 {
                out.push_str(&format!("\\x{c:02x}"));
            } else {
                out.push(c as char);
            }
            i += 1;
            continue;
        }
        match c {
            b'[' => {
                in_bracket = true;
                out.push('[');
                if re.get(i + 1) == Some(&b'^') {
                    out.push('^');
                    i += 1;
                }
                if re.get(i + 1) == Some(&b']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            b'\\' => {
                let Some(&n) = re.get(i + 1) else { return Err(format!("invalid regular expression '{}'", String::from_utf8_lossy(re))) };
                if n.is_ascii_alphanumeric() {
                    return Err(format!("invalid regular expression '{}'", String::from_utf8_lossy(re)));
                }
                out.push('\\');
                out.push(n as char);
                i += 1;
            }
            c if c >= 0x80 => out.push_str(&format!("\\x{c:02x}")),
            c => out.push(c as char),
        }
        i += 1;
    }
    if in_bracket {
        return Err(format!("invalid regular expression '{}'", String::from_utf8_lossy(re)));
    }
    Ok(out)
}

/// `%g`-style float printing with 6 significant digits, as C++ streams print a
/// double by default (used by `nix-instantiate --eval` output and `trace`).
pub fn format_float_g(f: f64) -> String {
    if f.is_nan() {
        return if f.is_sign_negative() { "-nan".into() } else { "nan".into() };
    }
    if f.is_infinite() {
        return if f < 0.0 { "-inf".into() } else { "inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{:.5e}", f);
    let (mantissa, exp) = sci.split_once('e').expect("scientific format has an exponent");
    let exp: i32 = exp.parse().expect("exponent is an integer");
    if !(-4..6).contains(&exp) {
        let m = trim_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (5 - exp).max(0) as usize;
        trim_zeros(&format!("{:.*}", decimals, f)).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s }
}

/// Floats in `toJSON`: the shortest round-trip digits, formatted as nlohmann::json
/// does (".0" for integral values, exponent outside [1e-4, 1e15)).
pub fn format_float_json(f: f64) -> String {
    if !f.is_finite() {
        return "null".into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').expect("scientific format has an exponent");
    let exp: i32 = exp.parse().expect("exponent is an integer");
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let k = digits.len() as i32;
    // value = 0.d1d2..dk * 10^n
    let n = exp + 1;
    let sign = if f < 0.0 { "-" } else { "" };
    let body = if k <= n && n <= 15 {
        format!("{}{}.0", digits, "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 15 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -4 < n && n <= 0 {
        format!("0.{}{}", "0".repeat((-n) as usize), digits)
    } else {
        let e = n - 1;
        let es = if e < 0 { format!("-{:02}", -e) } else { format!("+{:02}", e) };
        if k == 1 { format!("{digits}e{es}") } else { format!("{}.{}e{}", &digits[..1], &digits[1..], es) }
    };
    format!("{sign}{body}")
}
