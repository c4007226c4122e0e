//! The one canonical binary encoding for everything that is hashed or signed, and the digest type.
//!
//! The encoding is postcard (serde, varint integers, length-prefixed sequences, no maps, no
//! floats). Decoding is strict: trailing bytes are refused and the input must re-encode to exactly
//! the same bytes, so every value has exactly one accepted encoding. Golden tests in
//! `tests/golden.rs` pin the bytes, so a change to a signed format is always deliberate.

use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use std::fmt;

/// A SHA-256 digest. Serialised as 32 raw bytes in the canonical encoding and as lowercase hex in
/// human-readable formats (JSON, TOML).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The all-zero digest, used as the previous hash of the genesis block.
    pub const ZERO: Digest = Digest([0; 32]);

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, DecodeError> {
        parse_hex_array(s).map(Digest)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Digest {
    Digest(Sha256::digest(data).into())
}

/// SHA-256 over several parts, as if concatenated.
pub fn sha256_parts(parts: &[&[u8]]) -> Digest {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    Digest(h.finalize().into())
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is longer than the limit for this kind of value.
    #[error("input of {len} bytes exceeds the limit of {max} bytes")]
    Oversize {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a valid encoding of the expected type.
    #[error("malformed encoding: {0}")]
    Malformed(String),
    /// Bytes were left over after the value.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// The value decoded but its canonical encoding differs from the input.
    #[error("non-canonical encoding")]
    NonCanonical,
    /// Hex text could not be parsed.
    #[error("invalid hex: {0}")]
    Hex(String),
}

/// The canonical encoding of `value`.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serialising our own types into a Vec cannot fail: they contain no maps with non-string
    // keys, no unsupported types, and allocation failure aborts.
    postcard::to_allocvec(value).expect("canonical encoding of an engine type cannot fail")
}

/// Decodes `bytes` strictly: at most `max` bytes, no trailing bytes, canonical form only.
pub fn decode<T: Serialize + DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::Oversize { len: bytes.len(), max });
    }
    let (value, rest): (T, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    if encode(&value) != bytes {
        return Err(DecodeError::NonCanonical);
    }
    Ok(value)
}

pub(crate) fn parse_hex_array<const N: usize>(s: &str) -> Result<[u8; N], DecodeError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s.trim(), &mut out)
        .map_err(|e| DecodeError::Hex(format!("{e} (expected {} hex characters)", 2 * N)))?;
    Ok(out)
}

/// Serialises a fixed byte array as raw bytes (canonical) or hex (human readable).
pub(crate) fn ser_bytes<S: Serializer, const N: usize>(b: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&hex::encode(b))
    } else {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(N)?;
        for byte in b {
            t.serialize_element(byte)?;
        }
        t.end()
    }
}

/// The inverse of [`ser_bytes`].
pub(crate) fn de_bytes<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
    use serde::de::{Error, SeqAccess, Visitor};
    if d.is_human_readable() {
        let s = String::deserialize(d)?;
        return parse_hex_array(&s).map_err(D::Error::custom);
    }
    struct V<const N: usize>;
    impl<'de, const N: usize> Visitor<'de> for V<N> {
        type Value = [u8; N];
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{N} bytes")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
            let mut out = [0u8; N];
            for (i, slot) in out.iter_mut().enumerate() {
                *slot = seq.next_element()?.ok_or_else(|| A::Error::invalid_length(i, &self))?;
            }
            Ok(out)
        }
    }
    d.deserialize_tuple(N, V::<N>)
}

/// Implements serde for a newtype over `[u8; N]` through [`ser_bytes`] / [`de_bytes`].
macro_rules! bytes_newtype_serde {
    ($t:ident, $n:literal) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::codec::ser_bytes::<S, $n>(&self.0, s)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::codec::de_bytes::<D, $n>(d).map($t)
            }
        }
    };
}
pub(crate) use bytes_newtype_serde;

bytes_newtype_serde!(Digest, 32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_refuses_trailing_and_oversize() {
        let bytes = encode(&(1u32, Digest([7; 32])));
        assert_eq!(decode::<(u32, Digest)>(&bytes, 1024).unwrap(), (1, Digest([7; 32])));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode::<(u32, Digest)>(&longer, 1024), Err(DecodeError::TrailingBytes(1)));
        assert!(matches!(decode::<(u32, Digest)>(&bytes, 4), Err(DecodeError::Oversize { .. })));
    }

    #[test]
    fn decode_refuses_non_minimal_varint() {
        // 1 encoded as a two-byte varint (0x81 0x00) instead of 0x01.
        assert!(decode::<u32>(&[0x81, 0x00], 16).is_err());
    }

    #[test]
    fn digest_is_hex_in_json_and_raw_in_canonical() {
        let d = sha256(b"abc");
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\""
        );
        assert_eq!(encode(&d).len(), 32);
        assert_eq!(serde_json::from_str::<Digest>(&serde_json::to_string(&d).unwrap()).unwrap(), d);
    }
}
