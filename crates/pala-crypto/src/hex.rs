//! Minimal hex encoding for key files and identity lines (no extra dependency for 20 lines).

/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// Decodes hex (either case); the error says where the first bad character is.
pub fn decode(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    if b.len() & 1 == 1 {
        return Err(format!("odd number of hex characters ({})", b.len()));
    }
    let nibble = |i: usize| -> Result<u8, String> {
        match b[i] {
            c @ b'0'..=b'9' => Ok(c - b'0'),
            c @ b'a'..=b'f' => Ok(c - b'a' + 10),
            c @ b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(format!("non-hex character at position {i}")),
        }
    };
    (0..b.len() / 2)
        .map(|i| Ok((nibble(2 * i)? << 4) | nibble(2 * i + 1)?))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_errors() {
        assert_eq!(super::encode(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(super::decode("00ABff").unwrap(), vec![0, 0xab, 0xff]);
        assert!(super::decode("abc").is_err());
        assert!(super::decode("zz").is_err());
    }
}
