//! Deterministic CBOR (RFC 8949 §4.2.1, "core deterministic encoding").
//!
//! Everything Vouch signs or hashes is encoded here, so two implementations
//! that follow the CDDL produce the same bytes. Decoding is strict: the input
//! must be exactly the deterministic encoding of the value it holds, which
//! rules out indefinite lengths, over-long integer or float heads, unsorted
//! or duplicate map keys, and trailing bytes in one check.

use ciborium::Value;

/// Nesting depth accepted when decoding outside bytes: deep enough for any
/// go-livepeer event, shallow enough that hostile input cannot exhaust the stack.
pub const MAX_DEPTH: usize = 64;

/// Why bytes are not a deterministic CBOR item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// The bytes are not well-formed CBOR (or nest deeper than [`MAX_DEPTH`]).
    #[error("malformed CBOR: {0}")]
    Malformed(String),
    /// Well-formed CBOR follows the first item.
    #[error("trailing bytes after the CBOR item")]
    TrailingBytes,
    /// Well-formed, but not the deterministic encoding of its value.
    #[error("CBOR is not in deterministic encoding (RFC 8949 §4.2.1)")]
    NonCanonical,
}

/// Encodes `value` deterministically: map keys sorted by their encoded bytes,
/// shortest heads (ciborium always writes shortest integer and float heads).
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write(value, &mut out);
    out
}

/// Appends the deterministic encoding of `value` to `out`.
pub fn write(value: &Value, out: &mut Vec<u8>) {
    let sorted = canonicalize(value);
    // Writing into a Vec cannot fail, and every `Value` is serializable.
    if let Err(e) = ciborium::into_writer(&sorted, &mut *out) {
        unreachable!("CBOR encoding into memory failed: {e}");
    }
}

/// Decodes one deterministic CBOR item that spans all of `bytes`.
pub fn from_slice(bytes: &[u8]) -> Result<Value, CborError> {
    let mut reader = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_DEPTH)
        .map_err(|e| CborError::Malformed(e.to_string()))?;
    if !reader.is_empty() {
        return Err(CborError::TrailingBytes);
    }
    if to_vec(&value) != bytes {
        return Err(CborError::NonCanonical);
    }
    Ok(value)
}

/// Returns `value` with every map's entries in deterministic order.
fn canonicalize(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(canonicalize).collect()),
        Value::Map(entries) => {
            let mut keyed: Vec<(Vec<u8>, Value, Value)> = entries
                .iter()
                .map(|(k, v)| {
                    let k = canonicalize(k);
                    let mut kb = Vec::new();
                    if let Err(e) = ciborium::into_writer(&k, &mut kb) {
                        unreachable!("CBOR encoding into memory failed: {e}");
                    }
                    (kb, k, canonicalize(v))
                })
                .collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Map(keyed.into_iter().map(|(_, k, v)| (k, v)).collect())
        }
        Value::Tag(tag, inner) => Value::Tag(*tag, Box::new(canonicalize(inner))),
        other => other.clone(),
    }
}

/// Reads a map with small unsigned integer keys in strictly increasing order,
/// as every Vouch structure is. Unknown keys are an error so that a field the
/// reader does not understand is never silently ignored.
pub fn int_keyed_map(value: Value, known: &[u64]) -> Result<Vec<(u64, Value)>, MapError> {
    let Value::Map(entries) = value else {
        return Err(MapError::NotAMap);
    };
    let mut out = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let key = match k {
            Value::Integer(i) => u64::try_from(i).map_err(|_| MapError::BadKey)?,
            _ => return Err(MapError::BadKey),
        };
        if !known.contains(&key) {
            return Err(MapError::UnknownKey(key));
        }
        out.push((key, v));
    }
    Ok(out)
}

/// Why a CBOR value is not the integer-keyed map a structure expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The item is not a map.
    #[error("expected a CBOR map")]
    NotAMap,
    /// A key is not an unsigned integer.
    #[error("map key is not an unsigned integer")]
    BadKey,
    /// A key that this version of the format does not define.
    #[error("unknown map key {0}")]
    UnknownKey(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_by_encoded_bytes() {
        // 10 (0x0a) sorts before 100 (0x18 0x64), and "b" before "aa" (shorter first).
        let v = Value::Map(vec![
            (Value::Integer(100.into()), Value::Null),
            (Value::Integer(10.into()), Value::Null),
        ]);
        assert_eq!(to_vec(&v), [0xa2, 0x0a, 0xf6, 0x18, 0x64, 0xf6]);
        let t = Value::Map(vec![
            (Value::Text("aa".into()), Value::Null),
            (Value::Text("b".into()), Value::Null),
        ]);
        assert_eq!(to_vec(&t)[1..3], [0x61, b'b']);
    }

    #[test]
    fn rejects_each_non_canonical_form() {
        // Over-long integer head: 1 as 0x18 0x01.
        assert_eq!(from_slice(&[0x18, 0x01]), Err(CborError::NonCanonical));
        // Indefinite-length array.
        assert_eq!(from_slice(&[0x9f, 0x01, 0xff]), Err(CborError::NonCanonical));
        // Unsorted map keys.
        assert_eq!(from_slice(&[0xa2, 0x02, 0xf6, 0x01, 0xf6]), Err(CborError::NonCanonical));
        // A float that fits in half precision written as double.
        assert_eq!(
            from_slice(&[0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]),
            Err(CborError::NonCanonical)
        );
        assert_eq!(from_slice(&[0x01, 0x01]), Err(CborError::TrailingBytes));
        assert!(matches!(from_slice(&[0x1c]), Err(CborError::Malformed(_))));
        assert!(matches!(from_slice(&[]), Err(CborError::Malformed(_))));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = vec![0x81u8; 100_000];
        assert!(matches!(from_slice(&deep), Err(CborError::Malformed(_))));
    }

    #[test]
    fn int_keyed_map_rejects_unknown_keys() {
        let v = Value::Map(vec![(Value::Integer(7.into()), Value::Null)]);
        assert_eq!(int_keyed_map(v, &[0, 1]), Err(MapError::UnknownKey(7)));
        assert_eq!(int_keyed_map(Value::Null, &[0]), Err(MapError::NotAMap));
    }
}
