//! Hashing for `hashString`, `hashFile`, `convertHash` and `placeholder`, with
//! Nix's hash encodings (base16, nix32, base64, SRI). Self-contained: the eval
//! crate depends on no other workspace crate.

use sha1::Digest as _;

pub fn digest(algo: &str, data: &[u8]) -> Option<Vec<u8>> {
    Some(match algo {
        "md5" => md5::Md5::digest(data).to_vec(),
        "sha1" => sha1::Sha1::digest(data).to_vec(),
        "sha256" => sha2::Sha256::digest(data).to_vec(),
        "sha512" => sha2::Sha512::digest(data).to_vec(),
        _ => return None,
    })
}

fn digest_len(algo: &str) -> Option<usize> {
    Some(match algo {
        "md5" => 16,
        "sha1" => 20,
        "sha256" => 32,
        "sha512" => 64,
        _ => return None,
    })
}

pub fn base16(d: &[u8]) -> String {
    let mut s = String::with_capacity(d.len() * 2);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

const NIX32_CHARS: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Nix's base-32: least significant 5-bit group last, no padding.
pub fn nix32(d: &[u8]) -> String {
    let len = (d.len() * 8).div_ceil(5);
    let mut s = String::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        let c = (d[i] as u16 >> j) | if i + 1 < d.len() { (d[i + 1] as u16) << (8 - j) } else { 0 };
        s.push(NIX32_CHARS[(c & 0x1f) as usize] as char);
    }
    s
}

fn from_nix32(s: &str, len: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; len];
    let bytes = s.as_bytes();
    for (n, c) in bytes.iter().rev().enumerate() {
        let digit = NIX32_CHARS.iter().position(|x| x == c)? as u16;
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        out[i] |= (digit << j) as u8;
        let carry = digit >> (8 - j);
        if i + 1 < len {
            out[i + 1] |= carry as u8;
        } else if carry != 0 {
            return None;
        }
    }
    Some(out)
}

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64(d: &[u8]) -> String {
    let mut s = String::new();
    for chunk in d.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                s.push(B64[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn from_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        if c == b'=' {
            break;
        }
        let v = B64.iter().position(|x| *x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn from_base16(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Parses a hash in any encoding (SRI, `algo:...`, or bare with `algo` given).
pub fn parse_any(hash: &str, algo: Option<&str>) -> Result<(String, Vec<u8>), String> {
    let (algo, rest, sri) = if let Some((a, r)) = hash.split_once('-').filter(|(a, _)| digest_len(a).is_some()) {
        (a.to_string(), r, true)
    } else if let Some((a, r)) = hash.split_once(':') {
        (a.to_string(), r, false)
    } else if let Some(a) = algo {
        (a.to_string(), hash, false)
    } else {
        return Err(format!("hash '{hash}' does not include a type, nor is the type otherwise known from context"));
    };
    let Some(len) = digest_len(&algo) else { return Err(format!("unknown hash algorithm '{algo}', expect 'blake3', 'md5', 'sha1', 'sha256', or 'sha512'")) };
    let decoded = if sri {
        from_base64(rest)
    } else if rest.len() == len * 2 {
        from_base16(rest)
    } else if rest.len() == (len * 8).div_ceil(5) {
        from_nix32(rest, len)
    } else if rest.len() == base64(&vec![0; len]).len() {
        from_base64(rest)
    } else {
        None
    };
    match decoded {
        Some(d) if d.len() == len => Ok((algo, d)),
        _ => Err(format!("invalid {} hash '{}'", if sri { "SRI" } else { algo.as_str() }, hash)),
    }
}

pub fn format(algo: &str, d: &[u8], format: &str) -> Result<String, String> {
    Ok(match format {
        "base16" => base16(d),
        "nix32" | "base32" => nix32(d),
        "base64" => base64(d),
        "sri" => format!("{algo}-{}", base64(d)),
        other => return Err(format!("unknown hash format '{other}', expect 'base16', 'base32', 'base64', or 'sri'")),
    })
}
