//! SHA-256 of archive files and the `.CHECKSUM` sidecar format (`sha256sum` convention:
//! `<64 hex>  <file name>`). Pure functions.

pub use crate::digest::sha256_hex;

/// The `.CHECKSUM` line for `bytes` named `name`.
pub fn checksum_line(bytes: &[u8], name: &str) -> String {
    format!("{}  {name}\n", sha256_hex(bytes))
}

/// Parse a `.CHECKSUM` body: the first token must be 64 hex digits (returned lowercase).
pub fn parse_checksum(body: &str) -> Result<String, String> {
    let token = body.split_whitespace().next().unwrap_or_default();
    if token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(token.to_ascii_lowercase())
    } else {
        let shown: String = body.chars().take(80).collect();
        Err(format!(
            "expected `<sha256 hex>  <file name>`, found `{}`",
            shown.escape_debug()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parses_sha256sum_lines() {
        let line = checksum_line(b"abc", "BTCUSDT-1m-2024-01.zip");
        assert!(line.ends_with("  BTCUSDT-1m-2024-01.zip\n"));
        assert_eq!(parse_checksum(&line).unwrap(), sha256_hex(b"abc"));
        assert_eq!(
            parse_checksum(&line.to_ascii_uppercase()).unwrap(),
            sha256_hex(b"abc")
        );
        assert!(parse_checksum("<html>").is_err());
        assert!(parse_checksum("").is_err());
    }
}
