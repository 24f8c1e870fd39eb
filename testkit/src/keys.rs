//! Signing keys that a test can name: by a number, or by one byte repeated.

use k256::ecdsa::SigningKey;

/// The signing key numbered `n`: the scalar `n` (big-endian, in the last 4
/// bytes). The verifier's tests number a principal `1000 + i` and its
/// delegate `5000 + i` ([`crate::actor::Actor::numbered`]).
pub fn numbered(n: u32) -> SigningKey {
    let mut k = [0u8; 32];
    k[28..].copy_from_slice(&n.to_be_bytes());
    SigningKey::from_slice(&k).unwrap()
}

/// The signing key whose 32 bytes are all `byte` (not 0).
pub fn filled(byte: u8) -> SigningKey {
    SigningKey::from_slice(&[byte; 32]).unwrap()
}

/// [`filled`]'s key as the `0x`-hex text that `vouch` reads from a key file.
pub fn filled_hex(byte: u8) -> String {
    format!("0x{}", format!("{byte:02x}").repeat(32))
}
