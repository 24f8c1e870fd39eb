//! secp256k1 signatures the way Ethereum and Streamr make them.
//!
//! Every signature in Vouch is a 65-byte `r ‖ s ‖ v` recoverable ECDSA
//! signature with `v = 27 + recovery id`, over a Keccak-256 digest. Signing
//! is deterministic (RFC 6979) and always produces low-S signatures.

use std::sync::LazyLock;

use k256::ecdsa::{RecoveryId, Signature as EcdsaSignature, SigningKey, VerifyingKey};
use k256::elliptic_curve::zeroize::Zeroize;
use keccak_asm::{Digest, Keccak256};
use secp256k1::{Message, Secp256k1, SignOnly};

use crate::Address;

mod batch;
pub use batch::{batch_lanes, keccak256_batch};

/// Keccak-256 of `data`.
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// What EIP-191's `personal_sign` puts before the payload's length.
const EIP191_PREFIX: &[u8] = b"\x19Ethereum Signed Message:\n";

/// The EIP-191 `personal_sign` digest of `payload`:
/// Keccak-256 of `"\x19Ethereum Signed Message:\n" ‖ len(payload) ‖ payload`.
pub fn eip191_hash(payload: &[u8]) -> [u8; 32] {
    eip191_hash_parts(&[payload])
}

/// [`eip191_hash`] of the concatenation of `parts`, without building it.
pub fn eip191_hash_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(EIP191_PREFIX);
    h.update(parts.iter().map(|p| p.len()).sum::<usize>().to_string().as_bytes());
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// [`eip191_hash_parts`] of many payloads at once: `out[i]` is the digest
/// of `payloads[i]`'s parts. Hashed several at a time ([`keccak256_batch`]);
/// the digests are the very bytes the one-at-a-time function gives.
pub fn eip191_hashes(payloads: &[&[&[u8]]]) -> Vec<[u8; 32]> {
    let lengths: Vec<String> = payloads
        .iter()
        .map(|parts| parts.iter().map(|p| p.len()).sum::<usize>().to_string())
        .collect();
    let messages: Vec<Vec<&[u8]>> = payloads
        .iter()
        .zip(&lengths)
        .map(|(parts, len)| {
            let mut m: Vec<&[u8]> = Vec::with_capacity(parts.len() + 2);
            m.push(EIP191_PREFIX);
            m.push(len.as_bytes());
            m.extend_from_slice(parts);
            m
        })
        .collect();
    let refs: Vec<&[&[u8]]> = messages.iter().map(Vec::as_slice).collect();
    keccak256_batch(&refs)
}

/// The Ethereum address of a public key: the last 20 bytes of the Keccak-256
/// of its uncompressed encoding without the `0x04` prefix.
pub fn address_of(key: &VerifyingKey) -> Address {
    let point = key.to_encoded_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
    let mut out = [0u8; 20];
    out.copy_from_slice(&hash[12..]);
    Address(out)
}

/// A 65-byte recoverable signature, `r ‖ s ‖ v` with `v` ∈ {27, 28}.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 65]);

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature(0x{})", hex::encode(self.0))
    }
}

/// Why a signature does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The last byte is not 27 or 28 (Streamr's verifier refuses others too).
    #[error("signature v byte must be 27 or 28, got {0}")]
    BadV(u8),
    /// `r` or `s` is zero, out of range, or `s` is high.
    #[error("signature r or s is not a valid scalar")]
    BadScalar,
    /// No public key recovers from this signature and digest.
    #[error("no public key recovers from this signature")]
    Unrecoverable,
    /// The signature is valid, but for another key.
    #[error("signature was made by {actual}, expected {expected}")]
    WrongSigner {
        /// The address the envelope or certificate claims.
        expected: Address,
        /// The address that actually signed.
        actual: Address,
    },
}

impl Signature {
    /// Signs a 32-byte digest with `key` (RFC 6979, low-S).
    ///
    /// libsecp256k1 makes the signature: it signs ~2.5× faster than k256
    /// here, and its RFC 6979 nonce and low-S rule give the very bytes k256
    /// gives (a property test holds them equal; the Streamr golden vectors
    /// pin them). `key` stays a k256 key, the type every API takes.
    pub fn sign_prehash(key: &SigningKey, digest: &[u8; 32]) -> Signature {
        static CONTEXT: LazyLock<Secp256k1<SignOnly>> = LazyLock::new(Secp256k1::signing_only);
        let mut bytes: [u8; 32] = key.to_bytes().into();
        let secret = secp256k1::SecretKey::from_byte_array(bytes);
        bytes.zeroize();
        // A k256 signing key is a valid non-zero scalar: libsecp256k1 takes it.
        let mut secret = match secret {
            Ok(secret) => secret,
            Err(e) => unreachable!("a k256 signing key is a valid secret key: {e}"),
        };
        let sig = CONTEXT.sign_ecdsa_recoverable(Message::from_digest(*digest), &secret);
        secret.non_secure_erase();
        let (recid, rs) = sig.serialize_compact();
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&rs);
        // The recovery id is 0 or 1 for a signature libsecp256k1 made.
        out[64] = 27 + i32::from(recid) as u8;
        Signature(out)
    }

    /// Splits into the ECDSA signature and its recovery id, checking ranges.
    fn parts(&self) -> Result<(EcdsaSignature, RecoveryId), SignatureError> {
        let v = self.0[64];
        let recid = match v {
            27 | 28 => RecoveryId::from_byte(v - 27).ok_or(SignatureError::BadV(v))?,
            _ => return Err(SignatureError::BadV(v)),
        };
        let sig =
            EcdsaSignature::from_slice(&self.0[..64]).map_err(|_| SignatureError::BadScalar)?;
        // Ethereum (EIP-2) and k256's signer only produce low-S signatures;
        // refusing high-S keeps every message to exactly one valid signature.
        if sig.normalize_s().is_some() {
            return Err(SignatureError::BadScalar);
        }
        Ok((sig, recid))
    }

    /// Recovers the public key that signed `digest`.
    pub fn recover_key(&self, digest: &[u8; 32]) -> Result<VerifyingKey, SignatureError> {
        let (sig, recid) = self.parts()?;
        VerifyingKey::recover_from_prehash(digest, &sig, recid)
            .map_err(|_| SignatureError::Unrecoverable)
    }

    /// Recovers the address that signed `digest`.
    pub fn recover_address(&self, digest: &[u8; 32]) -> Result<Address, SignatureError> {
        self.recover_key(digest).map(|k| address_of(&k))
    }

    /// Checks the signature against a known public key. Cheaper than
    /// recovery, so verifiers use it once a delegate's key is cached.
    pub fn verify_with_key(
        &self,
        key: &VerifyingKey,
        digest: &[u8; 32],
    ) -> Result<(), SignatureError> {
        use k256::ecdsa::signature::hazmat::PrehashVerifier;
        let (sig, _) = self.parts()?;
        key.verify_prehash(digest, &sig).map_err(|_| SignatureError::WrongSigner {
            expected: address_of(key),
            actual: self.recover_address(digest).unwrap_or(Address::ZERO),
        })
    }

    /// Checks that `expected` signed `digest`.
    pub fn verify_address(
        &self,
        expected: Address,
        digest: &[u8; 32],
    ) -> Result<(), SignatureError> {
        let actual = self.recover_address(digest)?;
        if actual == expected {
            Ok(())
        } else {
            Err(SignatureError::WrongSigner { expected, actual })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// libsecp256k1's signature is k256's, byte for byte (RFC 6979
        /// nonce, low S, recovery id), so signing with either is the same.
        #[test]
        fn signs_exactly_as_k256(key in proptest::prelude::any::<[u8; 32]>(), digest in proptest::prelude::any::<[u8; 32]>()) {
            let Ok(key) = SigningKey::from_bytes(&key.into()) else { return Ok(()) };
            let (sig, recid) = key.sign_prehash_recoverable(&digest).unwrap();
            let mut expected = [0u8; 65];
            expected[..64].copy_from_slice(&sig.to_bytes());
            expected[64] = 27 + recid.to_byte();
            proptest::prop_assert_eq!(Signature::sign_prehash(&key, &digest), Signature(expected));
        }
    }

    fn key_one() -> SigningKey {
        let mut k = [0u8; 32];
        k[31] = 1;
        SigningKey::from_bytes(&k.into()).unwrap()
    }

    #[test]
    fn address_of_private_key_one() {
        assert_eq!(
            address_of(key_one().verifying_key()).to_string(),
            "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
        );
    }

    #[test]
    fn sign_recover_and_reject_tampering() {
        let key = key_one();
        assert_eq!(eip191_hash_parts(&[b"he", b"", b"llo"]), eip191_hash(b"hello"));
        let payloads: [&[&[u8]]; 3] = [&[b"he", b"", b"llo"], &[], &[b"hellp"]];
        assert_eq!(
            eip191_hashes(&payloads),
            vec![eip191_hash(b"hello"), eip191_hash(b""), eip191_hash(b"hellp")]
        );
        let digest = eip191_hash(b"hello");
        let sig = Signature::sign_prehash(&key, &digest);
        let me = address_of(key.verifying_key());
        assert_eq!(sig.recover_address(&digest).unwrap(), me);
        sig.verify_with_key(key.verifying_key(), &digest).unwrap();
        let other = eip191_hash(b"hellp");
        assert!(sig.verify_address(me, &other).is_err());
        assert!(sig.verify_with_key(key.verifying_key(), &other).is_err());
        let mut bad_v = sig;
        bad_v.0[64] = 29;
        assert_eq!(bad_v.recover_address(&digest), Err(SignatureError::BadV(29)));
        let zero = Signature([0; 65]);
        assert_eq!(zero.recover_address(&digest), Err(SignatureError::BadV(0)));
    }
}
