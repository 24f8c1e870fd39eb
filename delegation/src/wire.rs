//! Strict CBOR reading shared by certificates and revocations.
//!
//! Both are deterministic CBOR maps with small integer keys (see
//! [`vouch_schema::cbor`]). Every way the bytes can be wrong has its own
//! [`DecodeError`] variant so that a verifier's rejection log says exactly why.

use ciborium::Value;
use vouch_schema::cbor::{self, CborError, MapError};

/// The only wire version this build reads and writes.
pub const WIRE_VERSION: u64 = 1;

/// Largest encoded certificate or revocation accepted, in bytes. A real one
/// is under 300 bytes; the limit bounds work done on hostile input.
pub const MAX_ENCODED_BYTES: usize = 1024;

/// Longest `region`, in UTF-8 bytes.
pub const MAX_REGION_BYTES: usize = 64;

/// Why bytes are not an encoded certificate or revocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Over [`MAX_ENCODED_BYTES`]; nothing was parsed.
    #[error("encoded item is {size} bytes, over the {max}-byte limit")]
    TooLarge {
        /// The input's length.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not well-formed deterministic CBOR.
    #[error("invalid CBOR: {0}")]
    Cbor(#[from] CborError),
    /// The CBOR item is not a map.
    #[error("expected a CBOR map with integer keys")]
    NotAMap,
    /// A map key is not an unsigned integer.
    #[error("map key is not an unsigned integer")]
    BadKey,
    /// A key this version of the format does not define.
    #[error("unknown map key {0}")]
    UnknownKey(u64),
    /// A required key is absent.
    #[error("missing key {key} ({field})")]
    MissingKey {
        /// The key.
        key: u64,
        /// The field it holds.
        field: &'static str,
    },
    /// A value has the wrong CBOR type (or an integer out of range).
    #[error("key {key} ({field}) must be {expected}")]
    WrongType {
        /// The key.
        key: u64,
        /// The field it holds.
        field: &'static str,
        /// What it must be, in words.
        expected: &'static str,
    },
    /// A byte string has the wrong length.
    #[error("key {key} ({field}) must be {expected} bytes, got {actual}")]
    WrongLength {
        /// The key.
        key: u64,
        /// The field it holds.
        field: &'static str,
        /// The required length.
        expected: usize,
        /// The length found.
        actual: usize,
    },
    /// A version other than [`WIRE_VERSION`].
    #[error("unsupported wire version {0}; this build reads version 1")]
    UnsupportedVersion(u64),
    /// A role number Vouch does not define.
    #[error(
        "role {0} is not defined (0 orchestrator, 1 runner, 2 gateway, 3 loadtest, 4 verifier)"
    )]
    BadRole(u64),
    /// `region` longer than [`MAX_REGION_BYTES`].
    #[error("region is {0} bytes, over the 64-byte limit")]
    RegionTooLong(usize),
}

impl From<MapError> for DecodeError {
    fn from(e: MapError) -> Self {
        match e {
            MapError::NotAMap => DecodeError::NotAMap,
            MapError::BadKey => DecodeError::BadKey,
            MapError::UnknownKey(k) => DecodeError::UnknownKey(k),
        }
    }
}

/// A decoded integer-keyed map whose fields are taken out one by one.
pub(crate) struct Fields {
    entries: Vec<(u64, Value)>,
    names: &'static [(u64, &'static str)],
}

impl Fields {
    /// Decodes `bytes` as a deterministic CBOR map whose keys are all in `names`,
    /// and checks its version field (key 0).
    pub(crate) fn decode(
        bytes: &[u8],
        names: &'static [(u64, &'static str)],
    ) -> Result<Fields, DecodeError> {
        if bytes.len() > MAX_ENCODED_BYTES {
            return Err(DecodeError::TooLarge { size: bytes.len(), max: MAX_ENCODED_BYTES });
        }
        let value = cbor::from_slice(bytes)?;
        let known: Vec<u64> = names.iter().map(|(k, _)| *k).collect();
        let entries = cbor::int_keyed_map(value, &known)?;
        let mut fields = Fields { entries, names };
        let version = fields.uint(0)?;
        if version != WIRE_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        Ok(fields)
    }

    fn name(&self, key: u64) -> &'static str {
        self.names.iter().find(|(k, _)| *k == key).map_or("?", |(_, n)| n)
    }

    fn take(&mut self, key: u64) -> Result<Value, DecodeError> {
        match self.entries.iter().position(|(k, _)| *k == key) {
            Some(i) => Ok(self.entries.swap_remove(i).1),
            None => Err(DecodeError::MissingKey { key, field: self.name(key) }),
        }
    }

    /// An unsigned integer that fits `u64`.
    pub(crate) fn uint(&mut self, key: u64) -> Result<u64, DecodeError> {
        let wrong = DecodeError::WrongType { key, field: self.name(key), expected: "a uint64" };
        match self.take(key)? {
            Value::Integer(i) => u64::try_from(i).map_err(|_| wrong),
            _ => Err(wrong),
        }
    }

    /// A byte string of exactly `N` bytes.
    pub(crate) fn bytes<const N: usize>(&mut self, key: u64) -> Result<[u8; N], DecodeError> {
        let field = self.name(key);
        match self.take(key)? {
            Value::Bytes(b) => <[u8; N]>::try_from(b.as_slice())
                .map_err(|_| DecodeError::WrongLength { key, field, expected: N, actual: b.len() }),
            _ => Err(DecodeError::WrongType { key, field, expected: "a byte string" }),
        }
    }

    /// A byte string of any length (the whole item is already bounded by
    /// [`MAX_ENCODED_BYTES`]).
    pub(crate) fn var_bytes(&mut self, key: u64) -> Result<Vec<u8>, DecodeError> {
        let field = self.name(key);
        match self.take(key)? {
            Value::Bytes(b) => Ok(b),
            _ => Err(DecodeError::WrongType { key, field, expected: "a byte string" }),
        }
    }

    /// A text string.
    pub(crate) fn text(&mut self, key: u64) -> Result<String, DecodeError> {
        let field = self.name(key);
        match self.take(key)? {
            Value::Text(t) => Ok(t),
            _ => Err(DecodeError::WrongType { key, field, expected: "a text string" }),
        }
    }
}

/// An integer-keyed map value, ready for [`cbor::to_vec`].
pub(crate) fn int_map(entries: Vec<(u64, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (Value::Integer(k.into()), v)).collect())
}

/// A CBOR unsigned integer.
pub(crate) fn uint(n: u64) -> Value {
    Value::Integer(n.into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NAMES: &[(u64, &str)] = &[(0, "version"), (1, "a"), (2, "b"), (3, "c")];

    fn encode(entries: Vec<(u64, Value)>) -> Vec<u8> {
        cbor::to_vec(&int_map(entries))
    }

    #[test]
    fn each_error_has_its_variant() {
        let big = vec![0u8; MAX_ENCODED_BYTES + 1];
        assert!(matches!(Fields::decode(&big, NAMES), Err(DecodeError::TooLarge { .. })));
        assert!(matches!(Fields::decode(&[0xff], NAMES), Err(DecodeError::Cbor(_))));
        assert!(matches!(Fields::decode(&[0x01], NAMES), Err(DecodeError::NotAMap)));
        // {"x": 1}
        assert!(matches!(
            Fields::decode(&[0xa1, 0x61, b'x', 0x01], NAMES),
            Err(DecodeError::BadKey)
        ));
        let unknown = encode(vec![(0, uint(1)), (9, uint(1))]);
        assert_eq!(Fields::decode(&unknown, NAMES).err(), Some(DecodeError::UnknownKey(9)));
        let no_version = encode(vec![(1, uint(1))]);
        assert_eq!(
            Fields::decode(&no_version, NAMES).err(),
            Some(DecodeError::MissingKey { key: 0, field: "version" })
        );
        let v2 = encode(vec![(0, uint(2))]);
        assert_eq!(Fields::decode(&v2, NAMES).err(), Some(DecodeError::UnsupportedVersion(2)));
        let neg = encode(vec![(0, Value::Integer((-1).into()))]);
        assert!(matches!(Fields::decode(&neg, NAMES), Err(DecodeError::WrongType { key: 0, .. })));
    }

    #[test]
    fn typed_getters_report_field_names() {
        let bytes = encode(vec![
            (0, uint(1)),
            (1, Value::Bytes(vec![1, 2, 3])),
            (2, Value::Text("x".into())),
            (3, Value::Bool(true)),
        ]);
        let mut f = Fields::decode(&bytes, NAMES).unwrap();
        assert_eq!(
            f.bytes::<20>(1).err(),
            Some(DecodeError::WrongLength { key: 1, field: "a", expected: 20, actual: 3 })
        );
        assert_eq!(
            f.bytes::<20>(2).err(),
            Some(DecodeError::WrongType { key: 2, field: "b", expected: "a byte string" })
        );
        assert_eq!(
            f.text(3).err(),
            Some(DecodeError::WrongType { key: 3, field: "c", expected: "a text string" })
        );
        assert_eq!(f.uint(1).err(), Some(DecodeError::MissingKey { key: 1, field: "a" }));
    }
}
