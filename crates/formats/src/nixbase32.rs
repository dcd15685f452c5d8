//! Nix's base-32 encoding ("nix32"), used for store path hash parts and for
//! hashes printed with `--base32`.
//!
//! It is not RFC 4648 base32: the alphabet omits `e`, `o`, `u` and `t` (to avoid
//! accidental words), there is no padding, and the bit order is reversed. The
//! first character of the output holds the *most* significant bits of the *last*
//! input byte; equivalently, the string read right to left is the input read as a
//! little-endian bit string, five bits per character.

use thiserror::Error;

/// The 32 characters, in digit order.
pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Maps a byte to its digit value, or `0xff` if it is not in the alphabet.
const DECODE_TABLE: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut digit = 0;
    while digit < 32 {
        table[ALPHABET[digit] as usize] = digit as u8;
        digit += 1;
    }
    table
};

/// Why a string is not the nix32 encoding of a given number of bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Nix32Error {
    #[error("invalid character {0:?} in base-32 string")]
    InvalidCharacter(char),
    #[error("base-32 string has length {actual}, expected {expected}")]
    WrongLength { expected: usize, actual: usize },
    /// The last character carries bits beyond the end of the decoded bytes.
    #[error("base-32 string has non-zero padding bits")]
    NonZeroPadding,
}

/// The number of characters that encode `byte_len` bytes.
pub const fn encoded_len(byte_len: usize) -> usize {
    if byte_len == 0 { 0 } else { (byte_len * 8 - 1) / 5 + 1 }
}

/// The number of bytes a string of `char_len` characters decodes to.
pub const fn decoded_len(char_len: usize) -> usize {
    char_len * 5 / 8
}

/// Encodes `bytes` as nix32.
pub fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
    let mut out = vec![0u8; len];
    encode_into(bytes, &mut out);
    // The alphabet is ASCII.
    String::from_utf8(out).expect("nix32 alphabet is ASCII")
}

/// Encodes `bytes` into `out`, which must be exactly `encoded_len(bytes.len())` long.
pub fn encode_into(bytes: &[u8], out: &mut [u8]) {
    let len = encoded_len(bytes.len());
    assert_eq!(out.len(), len, "nix32 output buffer has the wrong length");
    for (position, slot) in out.iter_mut().enumerate() {
        // Character `position` (from the left) holds digit number `len - 1 - position`,
        // whose bits start at bit `5 * digit_index` of the little-endian input.
        let digit_index = len - 1 - position;
        let bit = digit_index * 5;
        let byte = bit / 8;
        let shift = bit % 8;
        let low = (bytes[byte] >> shift) as u16;
        let high = if byte + 1 < bytes.len() { (bytes[byte + 1] as u16) << (8 - shift) } else { 0 };
        *slot = ALPHABET[((low | high) & 0x1f) as usize];
    }
}

/// Decodes a nix32 string into `decoded_len(s.len())` bytes.
///
/// Like CppNix, it rejects characters outside the alphabet and a first character
/// with bits set beyond the end of the output. A length that no byte count
/// encodes to (say 3) is an error.
pub fn decode(s: &[u8]) -> Result<Vec<u8>, Nix32Error> {
    let mut out = vec![0u8; decoded_len(s.len())];
    decode_into(s, &mut out)?;
    Ok(out)
}

/// Decodes `s` into `out`; `s` must be exactly `encoded_len(out.len())` long.
pub fn decode_into(s: &[u8], out: &mut [u8]) -> Result<(), Nix32Error> {
    let expected = encoded_len(out.len());
    if s.len() != expected {
        return Err(Nix32Error::WrongLength { expected, actual: s.len() });
    }
    out.fill(0);
    for (digit_index, &character) in s.iter().rev().enumerate() {
        let digit = DECODE_TABLE[character as usize];
        if digit == 0xff {
            return Err(Nix32Error::InvalidCharacter(character as char));
        }
        let bit = digit_index * 5;
        let byte = bit / 8;
        let shift = bit % 8;
        out[byte] |= digit << shift;
        let carry = (digit as u16) >> (8 - shift);
        if byte + 1 < out.len() {
            out[byte + 1] |= carry as u8;
        } else if carry != 0 {
            return Err(Nix32Error::NonZeroPadding);
        }
    }
    Ok(())
}

/// Whether `c` is a nix32 digit.
pub fn is_nix32_char(c: u8) -> bool {
    DECODE_TABLE[c as usize] != 0xff
}
