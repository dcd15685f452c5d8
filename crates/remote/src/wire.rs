//! The framing of CppNix's protocols (serve and worker): unsigned 64-bit
//! little-endian words; strings as a length word, the bytes, and zero padding
//! to a multiple of 8; lists as a count word and the elements.

use std::io::{self, Read, Write};

/// Strings longer than this are refused when reading (store paths,
/// signatures and hashes are short; this only guards against garbage).
pub const MAX_STRING: u64 = 1 << 20;
/// Lists longer than this are refused when reading.
pub const MAX_LIST: u64 = 1 << 24;

fn protocol_error(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

pub fn write_u64(sink: &mut dyn Write, n: u64) -> io::Result<()> {
    sink.write_all(&n.to_le_bytes())
}

pub fn write_bool(sink: &mut dyn Write, b: bool) -> io::Result<()> {
    write_u64(sink, u64::from(b))
}

pub fn write_bytes(sink: &mut dyn Write, s: &[u8]) -> io::Result<()> {
    write_u64(sink, s.len() as u64)?;
    sink.write_all(s)?;
    sink.write_all(&[0u8; 8][..(8 - s.len() % 8) % 8])
}

pub fn write_string(sink: &mut dyn Write, s: &str) -> io::Result<()> {
    write_bytes(sink, s.as_bytes())
}

pub fn write_strings<'a>(sink: &mut dyn Write, items: impl ExactSizeIterator<Item = &'a str>) -> io::Result<()> {
    write_u64(sink, items.len() as u64)?;
    for item in items {
        write_string(sink, item)?;
    }
    Ok(())
}

pub fn read_u64(source: &mut dyn Read) -> io::Result<u64> {
    let mut buf = [0u8; 8];
    source.read_exact(&mut buf)?;
    Ok(u64::from_le_bytes(buf))
}

pub fn read_bool(source: &mut dyn Read) -> io::Result<bool> {
    Ok(read_u64(source)? != 0)
}

pub fn read_bytes(source: &mut dyn Read) -> io::Result<Vec<u8>> {
    let len = read_u64(source)?;
    if len > MAX_STRING {
        return Err(protocol_error("string is too long"));
    }
    let mut buf = vec![0u8; len.div_ceil(8) as usize * 8];
    source.read_exact(&mut buf)?;
    if buf[len as usize..].iter().any(|b| *b != 0) {
        return Err(protocol_error("non-zero padding"));
    }
    buf.truncate(len as usize);
    Ok(buf)
}

pub fn read_string(source: &mut dyn Read) -> io::Result<String> {
    String::from_utf8(read_bytes(source)?).map_err(|_| protocol_error("string is not UTF-8"))
}

pub fn read_strings(source: &mut dyn Read) -> io::Result<Vec<String>> {
    let n = read_u64(source)?;
    if n > MAX_LIST {
        return Err(protocol_error("list is too long"));
    }
    (0..n).map(|_| read_string(source)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_padded_to_eight_bytes() {
        let mut out = Vec::new();
        write_string(&mut out, "abc").unwrap();
        assert_eq!(out, [3, 0, 0, 0, 0, 0, 0, 0, b'a', b'b', b'c', 0, 0, 0, 0, 0]);
        assert_eq!(read_string(&mut &out[..]).unwrap(), "abc");
        let mut empty = Vec::new();
        write_string(&mut empty, "").unwrap();
        assert_eq!(empty.len(), 8);
    }

    #[test]
    fn bad_frames_are_errors() {
        let mut bad_padding = Vec::new();
        write_string(&mut bad_padding, "abc").unwrap();
        bad_padding[12] = 1;
        assert!(read_string(&mut &bad_padding[..]).is_err());
        let huge = (MAX_STRING + 1).to_le_bytes();
        assert!(read_string(&mut &huge[..]).is_err());
        assert!(read_string(&mut &[5u8, 0, 0][..]).is_err());
    }
}
