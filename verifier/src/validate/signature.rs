//! Envelope signature checks with libsecp256k1.
//!
//! Same rules as `vouch_schema::crypto` (65-byte `r ‖ s ‖ v`, `v` ∈ {27, 28},
//! low-S only, signer = the envelope's publisher), but through the
//! `secp256k1` crate, which verifies 2.6–2.9× faster than k256 on the
//! verifier's machines (BENCHMARKS.md, verifier pipeline). The first envelope
//! of a delegate is checked by key recovery; later ones against the cached key.

use secp256k1::ecdsa::{RecoverableSignature, RecoveryId, Signature};
use secp256k1::{Message, PublicKey, Secp256k1, VerifyOnly};
use vouch_schema::crypto::keccak256;
use vouch_schema::{Address, Envelope, SignatureError};

/// A delegate's public key, cached after its first verified envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DelegateKey(PublicKey);

/// Verifies envelope signatures; holds the libsecp256k1 context.
pub(crate) struct SignatureChecker {
    secp: Secp256k1<VerifyOnly>,
}

impl std::fmt::Debug for SignatureChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignatureChecker")
    }
}

impl SignatureChecker {
    pub(crate) fn new() -> Self {
        SignatureChecker { secp: Secp256k1::verification_only() }
    }

    /// Recovers the signer of `env` from its signing hash `digest`
    /// ([`Envelope::signing_hash`]), checks it is the publisher, and returns its key.
    pub(crate) fn recover(
        &self,
        env: &Envelope,
        digest: [u8; 32],
    ) -> Result<DelegateKey, SignatureError> {
        let (sig, recid) = parts(&env.signature.0)?;
        let recoverable = RecoverableSignature::from_compact(&env.signature.0[..64], recid)
            .map_err(|_| SignatureError::BadScalar)?;
        let msg = Message::from_digest(digest);
        let key = self
            .secp
            .recover_ecdsa(msg, &recoverable)
            .map_err(|_| SignatureError::Unrecoverable)?;
        // Recovery alone does not reject high-S; the normalized check does.
        self.secp.verify_ecdsa(msg, &sig, &key).map_err(|_| SignatureError::BadScalar)?;
        let actual = address(&key);
        if actual != env.id.publisher {
            return Err(SignatureError::WrongSigner { expected: env.id.publisher, actual });
        }
        Ok(DelegateKey(key))
    }

    /// Checks `env`, whose signing hash is `digest`, against a delegate key
    /// recovered earlier.
    pub(crate) fn verify(
        &self,
        env: &Envelope,
        digest: [u8; 32],
        key: &DelegateKey,
    ) -> Result<(), SignatureError> {
        let (sig, _) = parts(&env.signature.0)?;
        let msg = Message::from_digest(digest);
        self.secp.verify_ecdsa(msg, &sig, &key.0).map_err(|_| SignatureError::WrongSigner {
            expected: env.id.publisher,
            actual: self.recover(env, digest).map(|k| address(&k.0)).unwrap_or(Address::ZERO),
        })
    }
}

/// Splits `r ‖ s ‖ v`, refusing a `v` other than 27/28 and high-S values.
fn parts(sig: &[u8; 65]) -> Result<(Signature, RecoveryId), SignatureError> {
    let v = sig[64];
    let recid = match v {
        27 | 28 => RecoveryId::try_from(i32::from(v - 27)).map_err(|_| SignatureError::BadV(v))?,
        _ => return Err(SignatureError::BadV(v)),
    };
    let parsed = Signature::from_compact(&sig[..64]).map_err(|_| SignatureError::BadScalar)?;
    let mut normalized = parsed;
    normalized.normalize_s();
    if normalized != parsed {
        return Err(SignatureError::BadScalar);
    }
    Ok((parsed, recid))
}

/// The Ethereum address of a public key.
fn address(key: &PublicKey) -> Address {
    let hash = keccak256(&key.serialize_uncompressed()[1..]);
    let mut out = [0u8; 20];
    out.copy_from_slice(&hash[12..]);
    Address(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k256::ecdsa::SigningKey;
    use vouch_schema::{MessageId, MessageRef};

    fn envelope() -> (Envelope, SigningKey) {
        let key = SigningKey::from_slice(&[9u8; 32]).unwrap();
        let id = MessageId {
            stream_id: "0x90f8bf6a479f320ead074411a4b0e7944ea8c9c1/livepeer/telemetry".into(),
            partition: 1,
            timestamp: 1_764_000_000_000,
            seq: 2,
            publisher: Address::ZERO,
            msg_chain_id: "c".into(),
        };
        let prev = Some(MessageRef { timestamp: 1_764_000_000_000, seq: 1 });
        (Envelope::sign(id, prev, b"payload".to_vec(), &key).unwrap(), key)
    }

    #[test]
    fn agrees_with_k256_on_good_and_bad_signatures() {
        let checker = SignatureChecker::new();
        let (env, _) = envelope();
        let key = checker.recover(&env, env.signing_hash()).unwrap();
        checker.verify(&env, env.signing_hash(), &key).unwrap();
        assert!(env.verify().is_ok());

        let mut tampered = env.clone();
        tampered.content.push(0);
        assert!(checker.verify(&tampered, tampered.signing_hash(), &key).is_err());
        assert!(
            checker.recover(&tampered, tampered.signing_hash()).is_err(),
            "recovers someone else"
        );
        assert!(tampered.verify().is_err());

        let mut bad_v = env.clone();
        bad_v.signature.0[64] = 29;
        assert_eq!(checker.recover(&bad_v, bad_v.signing_hash()), Err(SignatureError::BadV(29)));

        // The same signature with s replaced by n - s (high-S) is refused by both.
        let mut high_s = env.clone();
        let sig = k256::ecdsa::Signature::from_slice(&env.signature.0[..64]).unwrap();
        let (r, s) = sig.split_scalars();
        let flipped = k256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
        high_s.signature.0[..64].copy_from_slice(&flipped.to_bytes());
        high_s.signature.0[64] ^= 1; // the other recovery id recovers the same key
        assert!(checker.recover(&high_s, high_s.signing_hash()).is_err());
        assert!(high_s.verify().is_err());
    }
}
