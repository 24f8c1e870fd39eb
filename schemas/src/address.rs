//! Ethereum addresses: the identity of every principal and delegate.

use std::fmt;
use std::str::FromStr;

/// A 20-byte Ethereum address. Displays as lowercase `0x`-hex, the form
/// Streamr signs and the form every Vouch API returns.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(pub [u8; 20]);

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
