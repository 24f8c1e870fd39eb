//! Ethereum addresses: the identity of every principal and delegate.

use std::fmt;
use std::str::FromStr;

/// A 20-byte Ethereum address. Displays as lowercase `0x`-hex, the form
/// Streamr signs and the form every Vouch API returns.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Address(pub [u8; 20]);

/// The bytes' lexicographic order (as a derived `Ord` would give), compared
/// as two big-endian integers: addresses key the SLA engine's and the
/// authority's ordered maps, and the derived comparison calls `memcmp` for
/// each of the many comparisons a lookup makes.
impl Ord for Address {
    #[inline]
    fn cmp(&self, other: &Address) -> std::cmp::Ordering {
        #[inline]
        fn halves(a: &[u8; 20]) -> (u128, u32) {
            let (mut high, mut low) = ([0u8; 16], [0u8; 4]);
            high.copy_from_slice(&a[..16]);
            low.copy_from_slice(&a[16..]);
            (u128::from_be_bytes(high), u32::from_be_bytes(low))
        }
        halves(&self.0).cmp(&halves(&other.0))
    }
}

impl PartialOrd for Address {
    #[inline]
    fn partial_cmp(&self, other: &Address) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Why a string is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not `0x` followed by 40 hex digits.
    #[error("an address is 0x followed by 40 hex digits, got {0:?}")]
    Format(String),
}

impl Address {
    /// The zero address, which Livepeer's pool walk returns at its end.
    pub const ZERO: Address = Address([0; 20]);

    /// Builds an address from a byte slice that must be exactly 20 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Address> {
        <[u8; 20]>::try_from(bytes).ok().map(Address)
    }

    /// The lowercase `0x`-hex form.
    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for Address {
    type Err = AddressError;

    /// Accepts any letter case (EIP-55 checksummed or not); the checksum is
    /// not enforced because go-livepeer and Streamr both emit lowercase.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .ok_or_else(|| AddressError::Format(s.to_owned()))?;
        let mut out = [0u8; 20];
        hex::decode_to_slice(digits, &mut out).map_err(|_| AddressError::Format(s.to_owned()))?;
        Ok(Address(out))
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Addresses order as their bytes do, whichever byte differs first.
        #[test]
        fn order_is_the_bytes_order(a: [u8; 20], b: [u8; 20], at in 0usize..20, flip: u8) {
            let mut near = a;
            near[at] ^= flip;
            for (x, y) in [(a, b), (a, near), (near, a), (a, a)] {
                proptest::prop_assert_eq!(Address(x).cmp(&Address(y)), x.cmp(&y));
            }
        }
    }

    #[test]
    fn parses_any_case_and_prints_lowercase() {
        let a: Address = "0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1".parse().unwrap();
        assert_eq!(a.to_string(), "0x90f8bf6a479f320ead074411a4b0e7944ea8c9c1");
    }

    #[test]
    fn rejects_wrong_lengths_and_prefixes() {
        for bad in ["", "0x", "90f8bf6a479f320ead074411a4b0e7944ea8c9c1", "0x90f8", "0xzz"] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }
}
