//! Trading-pair symbols, validated so that a symbol can be sent in a query string and used as a
//! path segment (`symbol=BTCUSDT/`) without escaping or escaping the output root.
//!
//! Rule: 1 to 32 characters of `A-Z`, `0-9` and `_` (COIN-M symbols such as `BTCUSD_PERP` and
//! `BTCUSD_240628` contain underscores). Lower case is rejected with a suggestion rather than
//! silently upper-cased, because Binance itself rejects it.

use std::fmt;
use std::str::FromStr;

/// A validated Binance symbol such as `BTCUSDT`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol(String);

/// The longest symbol accepted.
pub const MAX_SYMBOL_LEN: usize = 32;

impl Symbol {
    /// The symbol as sent to the exchange and written in paths.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Symbol {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Why a string is not a valid symbol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseSymbolError {
    /// The string is empty.
    #[error("symbol is empty; expected something like `BTCUSDT`")]
    Empty,
    /// The string is longer than [`MAX_SYMBOL_LEN`].
    #[error("symbol `{0}` is longer than 32 characters")]
    TooLong(String),
    /// The string has lower-case letters.
    #[error("symbol `{input}` must be upper case, as Binance spells it (did you mean `{upper}`?)")]
    LowerCase {
        /// What was given.
        input: String,
        /// The upper-case spelling.
        upper: String,
    },
    /// The string has a character outside `A-Z 0-9 _`.
    #[error(
        "symbol `{input}` has the character {ch:?}; symbols are letters A-Z, digits and `_` only (no `/`, `-`, `.` or spaces: write `BTCUSDT`, not `BTC/USDT`)"
    )]
    BadChar {
        /// What was given (control characters escaped).
        input: String,
        /// The first offending character.
        ch: char,
    },
}

impl FromStr for Symbol {
    type Err = ParseSymbolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ParseSymbolError::Empty);
        }
        if s.chars().count() > MAX_SYMBOL_LEN {
            return Err(ParseSymbolError::TooLong(s.escape_debug().to_string()));
        }
        if let Some(ch) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
        {
            return Err(ParseSymbolError::BadChar {
                input: s.escape_debug().to_string(),
                ch,
            });
        }
        if s.chars().any(|c| c.is_ascii_lowercase()) {
            return Err(ParseSymbolError::LowerCase {
                input: s.to_owned(),
                upper: s.to_ascii_uppercase(),
            });
        }
        Ok(Symbol(s.to_owned()))
    }
}

impl serde::Serialize for Symbol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Symbol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_binance_symbols() {
        for s in ["BTCUSDT", "1000SHIBUSDT", "BTCUSD_PERP", "ETHUSD_240628"] {
            assert_eq!(s.parse::<Symbol>().unwrap().as_str(), s);
        }
    }

    #[test]
    fn rejects_hostile_and_sloppy_symbols() {
        for s in [
            "",
            "../../etc",
            "BTC/USDT",
            "BTC-USDT",
            "a\0b",
            ".",
            "..",
            "BTC USDT",
        ] {
            assert!(s.parse::<Symbol>().is_err(), "{s:?} accepted");
        }
        let e = "btcusdt".parse::<Symbol>().unwrap_err().to_string();
        assert!(e.contains("did you mean `BTCUSDT`"), "{e}");
        assert!("X".repeat(33).parse::<Symbol>().is_err());
    }
}
