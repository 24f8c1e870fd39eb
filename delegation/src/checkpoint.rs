//! Signed checkpoints: what a verifier commits to when a minute seals.
//!
//! For each sealed minute a verifier signs the count and Merkle root of the
//! envelopes it accepted with timestamps in that minute, the hash of the
//! score buckets it sealed for it, the policy and authority view it used,
//! and its log head. Verifiers that saw the same envelopes under the same
//! policy sign the same `envelopes`, `root` and `buckets`; where they differ,
//! the minute names the disagreement and an auditor can prove which
//! envelopes one of them left out.
//!
//! The signed text is a note in the style of C2SP's `tlog-checkpoint`
//! ([`Checkpoint::note_body`]), signed by a verifier-role delegate with an
//! EIP-191 personal-message signature — any Ethereum library checks it
//! (`verifyMessage`). The delegate's certificate rides along, so any
//! verifier can check any checkpoint without a lookup.
//!
//! Wire encoding, a deterministic CBOR map (`schemas/telemetry.cddl`):
//!
//! | key | field | type |
//! |---|---|---|
//! | 0 | version | uint (1) |
//! | 1 | chain_id | uint |
//! | 2 | verifying_contract | bytes(20) |
//! | 3 | minute | uint (Unix minutes) |
//! | 4 | envelopes | uint |
//! | 5 | root | bytes(32), RFC 6962 SHA-256 over the sorted envelope ids |
//! | 6 | buckets | bytes(32), blake3 of the minute's sealed buckets |
//! | 7 | policy | bytes(32), the SLA policy hash |
//! | 8 | view | bytes(32), the authority view hash |
//! | 9 | partitions | bytes(13), bit `p` set when partition `p` is followed |
//! | 10 | log_records | uint, records in the log at signing |
//! | 11 | log_head | bytes(32), the log's chain hash there |
//! | 12 | certificate | bytes, the signer's verifier-role delegation |
//! | 13 | signature | bytes(65), EIP-191 over the note body, r ‖ s ‖ v |

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ciborium::Value;
use k256::ecdsa::SigningKey;
use vouch_schema::crypto::eip191_hash;
use vouch_schema::{Address, Signature, cbor};

use crate::certificate::{CertificateError, Policy, SignedDelegation, VerifiedDelegation};
use crate::eip712::Eip712Network;
use crate::role::Role;
use crate::wire::{DecodeError, Fields, WIRE_VERSION, int_map, uint};

/// The first line of every checkpoint note.
pub const NOTE_ORIGIN: &str = "vouch-checkpoint/1";

/// Bytes of the partition bitmap (100 partitions).
pub const PARTITION_BYTES: usize = 13;

/// What a verifier commits to for one sealed minute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// The network (EIP-712 domain) the verifier serves.
    pub network: Eip712Network,
    /// The minute, in minutes since the Unix epoch.
    pub minute: u64,
    /// Envelopes accepted with timestamps in the minute.
    pub envelopes: u64,
    /// RFC 6962 root over their sorted ids (`vouch_schema::merkle`).
    pub root: [u8; 32],
    /// blake3 of the score buckets sealed for the minute.
    pub buckets: [u8; 32],
    /// The SLA policy hash in force.
    pub policy: [u8; 32],
    /// The authority view hash in force.
    pub view: [u8; 32],
    /// The partitions the verifier follows (bit `p` of byte `p / 8`, LSB first).
    pub partitions: [u8; PARTITION_BYTES],
    /// Records in the verifier's log when it signed.
    pub log_records: u64,
    /// The log's chain hash at that record.
    pub log_head: [u8; 32],
}

/// Why a checkpoint does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The embedded certificate does not decode.
    #[error("checkpoint certificate does not decode: {0}")]
    CertificateDecode(#[source] DecodeError),
    /// The embedded certificate does not verify at the minute's end.
    #[error("checkpoint certificate does not verify: {0}")]
    Certificate(#[source] CertificateError),
    /// The certificate is not a verifier-role delegation.
    #[error("checkpoint signed under a {0} certificate; only verifiers sign checkpoints")]
    NotAVerifier(Role),
    /// Signed for another network than the certificate's.
    #[error("checkpoint names {checkpoint}, its certificate {certificate}")]
    WrongNetwork {
        /// The checkpoint's network.
        checkpoint: Eip712Network,
        /// The certificate's network.
        certificate: Eip712Network,
    },
    /// The signature is not the certificate's delegate's.
    #[error("checkpoint signature: {0}")]
    Signature(#[source] CertificateError),
}

impl Checkpoint {
    /// The signed text: a C2SP-style note body, one field per line.
    pub fn note_body(&self) -> String {
        let b64 = |b: &[u8]| STANDARD.encode(b);
        format!(
            "{NOTE_ORIGIN}\nnetwork eip155:{}:{}\nminute {}\nenvelopes {}\nroot {}\nbuckets {}\n\
             policy 0x{}\nview {}\npartitions {}\nlog {} {}\n",
            self.network.chain_id,
            self.network.verifying_contract,
            self.minute,
            self.envelopes,
            b64(&self.root),
            b64(&self.buckets),
            hex::encode(self.policy),
            hex::encode(self.view),
            hex::encode(self.partitions),
            self.log_records,
            b64(&self.log_head),
        )
    }

    /// Whether two verifiers' checkpoints of the same minute say the same
    /// thing about it: the same envelopes, the same sealed buckets, under the
    /// same policy, over the same partitions. (Logs, and so log heads,
    /// differ between verifiers by design.)
    pub fn agrees_with(&self, other: &Checkpoint) -> bool {
        (self.network, self.minute, self.envelopes, self.root, self.buckets)
            == (other.network, other.minute, other.envelopes, other.root, other.buckets)
            && (self.policy, self.partitions) == (other.policy, other.partitions)
    }

    /// Signs with the verifier delegate `key`, whose certificate is `certificate`.
    pub fn sign(self, key: &SigningKey, certificate: Vec<u8>) -> SignedCheckpoint {
        let signature = Signature::sign_prehash(key, &eip191_hash(self.note_body().as_bytes()));
        SignedCheckpoint { checkpoint: self, certificate, signature }
    }
}

/// A checkpoint as it travels: signed, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What it commits to.
    pub checkpoint: Checkpoint,
    /// The signer's verifier-role certificate (wire encoding).
    pub certificate: Vec<u8>,
    /// EIP-191 signature over [`Checkpoint::note_body`].
    pub signature: Signature,
}

const FIELDS: &[(u64, &str)] = &[
    (0, "version"),
    (1, "chain_id"),
    (2, "verifying_contract"),
    (3, "minute"),
    (4, "envelopes"),
    (5, "root"),
    (6, "buckets"),
    (7, "policy"),
    (8, "view"),
    (9, "partitions"),
    (10, "log_records"),
    (11, "log_head"),
    (12, "certificate"),
    (13, "signature"),
];

impl SignedCheckpoint {
    /// The deterministic CBOR wire encoding (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let c = &self.checkpoint;
        let bytes = |b: &[u8]| Value::Bytes(b.to_vec());
        cbor::to_vec(&int_map(vec![
            (0, uint(WIRE_VERSION)),
            (1, uint(c.network.chain_id)),
            (2, bytes(&c.network.verifying_contract.0)),
            (3, uint(c.minute)),
            (4, uint(c.envelopes)),
            (5, bytes(&c.root)),
            (6, bytes(&c.buckets)),
            (7, bytes(&c.policy)),
            (8, bytes(&c.view)),
            (9, bytes(&c.partitions)),
            (10, uint(c.log_records)),
            (11, bytes(&c.log_head)),
            (12, bytes(&self.certificate)),
            (13, bytes(&self.signature.0)),
        ]))
    }

    /// Decodes the wire encoding strictly: every key known and present,
    /// every length exact.
    pub fn decode(bytes: &[u8]) -> Result<SignedCheckpoint, DecodeError> {
        let mut f = Fields::decode(bytes, FIELDS)?;
        let chain_id = f.uint(1)?;
        let verifying_contract = Address(f.bytes(2)?);
        let checkpoint = Checkpoint {
            network: Eip712Network { chain_id, verifying_contract },
            minute: f.uint(3)?,
            envelopes: f.uint(4)?,
            root: f.bytes(5)?,
            buckets: f.bytes(6)?,
            policy: f.bytes(7)?,
            view: f.bytes(8)?,
            partitions: f.bytes(9)?,
            log_records: f.uint(10)?,
            log_head: f.bytes(11)?,
        };
        Ok(SignedCheckpoint {
            checkpoint,
            certificate: f.var_bytes(12)?,
            signature: Signature(f.bytes(13)?),
        })
    }

    /// The note: the signed body and a signature line naming the signer.
    pub fn note(&self) -> String {
        let signer = SignedDelegation::decode(&self.certificate)
            .map_or_else(|_| "unknown".to_owned(), |c| c.delegate.to_string());
        format!(
            "{}\n\u{2014} vouch {signer} {}\n",
            self.checkpoint.note_body(),
            STANDARD.encode(self.signature.0)
        )
    }

    /// Checks the certificate (for `network`, under `policy`, valid at the
    /// end of the minute, role verifier) and that its delegate signed the
    /// note. Whether the certificate's principal holds verifier standing is
    /// the caller's question (the authority view in force).
    pub fn verify(
        &self,
        network: &Eip712Network,
        policy: &Policy,
    ) -> Result<VerifiedCheckpoint, CheckpointError> {
        let cert = SignedDelegation::decode(&self.certificate)
            .map_err(CheckpointError::CertificateDecode)?;
        let at = self.checkpoint.minute.saturating_add(1).saturating_mul(60);
        let cert = cert.verify(network, at, policy).map_err(CheckpointError::Certificate)?;
        if cert.role() != Role::Verifier {
            return Err(CheckpointError::NotAVerifier(cert.role()));
        }
        if self.checkpoint.network != cert.network() {
            return Err(CheckpointError::WrongNetwork {
                checkpoint: self.checkpoint.network,
                certificate: cert.network(),
            });
        }
        let digest = eip191_hash(self.checkpoint.note_body().as_bytes());
        crate::certificate::check_signer(&self.signature, &digest, cert.delegate())
            .map_err(CheckpointError::Signature)?;
        Ok(VerifiedCheckpoint { signed: self.clone(), certificate: cert })
    }
}

/// A checkpoint that passed [`SignedCheckpoint::verify`]. Only this crate makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    signed: SignedCheckpoint,
    certificate: VerifiedDelegation,
}

impl VerifiedCheckpoint {
    /// The checkpoint as signed.
    pub fn signed(&self) -> &SignedCheckpoint {
        &self.signed
    }

    /// What it commits to.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.signed.checkpoint
    }

    /// The signer's verified certificate.
    pub fn certificate(&self) -> &VerifiedDelegation {
        &self.certificate
    }

    /// The verifier principal that answers for it.
    pub fn verifier(&self) -> Address {
        self.certificate.principal()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::certificate::DelegationTerms;
    use vouch_schema::crypto::address_of;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_slice(&[n; 32]).unwrap()
    }

    fn network() -> Eip712Network {
        Eip712Network::arbitrum_one()
    }

    fn certificate(role: Role) -> Vec<u8> {
        let terms = DelegationTerms {
            delegate: address_of(key(2).verifying_key()),
            role,
            region: "FRA".into(),
            not_before: 1_000,
            not_after: 1_000 + 86_400,
            nonce: 1,
        };
        SignedDelegation::issue(&key(1), network(), terms).unwrap().encode()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            network: network(),
            minute: 100,
            envelopes: 3,
            root: [1; 32],
            buckets: [2; 32],
            policy: [3; 32],
            view: [4; 32],
            partitions: [0xff; PARTITION_BYTES],
            log_records: 42,
            log_head: [5; 32],
        }
    }

    #[test]
    fn signs_encodes_decodes_and_verifies() {
        let signed = checkpoint().sign(&key(2), certificate(Role::Verifier));
        let bytes = signed.encode();
        assert!(bytes.len() < crate::MAX_ENCODED_BYTES, "{}", bytes.len());
        let back = SignedCheckpoint::decode(&bytes).unwrap();
        assert_eq!(back, signed);
        let verified = back.verify(&network(), &Policy::default()).unwrap();
        assert_eq!(verified.verifier(), address_of(key(1).verifying_key()));
        assert!(signed.note().starts_with("vouch-checkpoint/1\nnetwork eip155:42161:"));
        assert!(signed.note().contains("\n\u{2014} vouch 0x"));
    }

    #[test]
    fn tampering_other_roles_and_strangers_fail() {
        let mut signed = checkpoint().sign(&key(2), certificate(Role::Verifier));
        signed.checkpoint.envelopes += 1;
        assert!(matches!(
            signed.verify(&network(), &Policy::default()),
            Err(CheckpointError::Signature(_))
        ));
        let gateway = checkpoint().sign(&key(2), certificate(Role::Gateway));
        assert_eq!(
            gateway.verify(&network(), &Policy::default()).err(),
            Some(CheckpointError::NotAVerifier(Role::Gateway))
        );
        let stranger = checkpoint().sign(&key(3), certificate(Role::Verifier));
        assert!(matches!(
            stranger.verify(&network(), &Policy::default()),
            Err(CheckpointError::Signature(_))
        ));
        let mut bytes = checkpoint().sign(&key(2), certificate(Role::Verifier)).encode();
        bytes.truncate(bytes.len() - 1);
        assert!(SignedCheckpoint::decode(&bytes).is_err());
    }

    #[test]
    fn agreement_ignores_the_log_but_not_the_envelopes() {
        let a = checkpoint();
        let mut b = checkpoint();
        b.log_records = 7;
        b.log_head = [9; 32];
        b.view = [8; 32];
        assert!(a.agrees_with(&b));
        b.root[0] ^= 1;
        assert!(!a.agrees_with(&b));
    }
}
