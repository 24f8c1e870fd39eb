//! Making this verifier's checkpoints, and the convergence state the node's
//! subsystems share.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use k256::ecdsa::SigningKey;
use prometheus_client::encoding::DescriptorEncoder;
use serde::Deserialize;
use vouch_delegation::{Checkpoint, Eip712Network, Role, SignedCheckpoint, SignedDelegation};
use vouch_net::metrics::{counter, gauge};
use vouch_schema::Signature;
use vouch_sla::SealedBucket;

use super::book::BookLimits;
use super::index::{EnvelopeIndex, IndexLimits};
use super::{MINUTE_MS, PartitionSet};

/// `[checkpoint]`: who signs this verifier's checkpoints, and how much is kept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    /// The verifier delegate's key file (hex or keystore); without it the
    /// node still computes its checkpoints (for agreement) but signs, logs
    /// and gossips none.
    pub key: Option<PathBuf>,
    /// Its verifier-role certificate (CBOR or wallet JSON).
    pub certificate: Option<PathBuf>,
    /// Minutes of checkpoints kept in memory (default 1,440: a day).
    pub keep_minutes: Option<usize>,
    /// Envelope ids indexed at most (default 1,000,000).
    pub max_index_ids: Option<usize>,
}

/// Why the checkpoint signer cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// Only one of key and certificate is given.
    #[error("[checkpoint] needs both key and certificate, or neither")]
    Incomplete,
    /// The key file cannot be read.
    #[error("[checkpoint] key {path}: {source}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: vouch_delegation::keys::KeyError,
    },
    /// The certificate cannot be read or decoded.
    #[error("[checkpoint] certificate {path}: {problem}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The certificate is not a verifier-role delegation of this key.
    #[error(
        "[checkpoint] certificate delegates {delegate} as {role}; the key is {key} and the role must be verifier"
    )]
    Mismatch {
        /// The certificate's delegate.
        delegate: vouch_schema::Address,
        /// Its role.
        role: Role,
        /// The key's address.
        key: vouch_schema::Address,
    },
}

impl CheckpointConfig {
    /// The bounds of the checkpoint book.
    pub fn book_limits(&self) -> BookLimits {
        BookLimits {
            minutes: self.keep_minutes.unwrap_or(BookLimits::default().minutes),
            ..BookLimits::default()
        }
    }
}

/// The verifier delegate that signs checkpoints.
#[derive(Clone)]
pub struct CheckpointSigner {
    key: SigningKey,
    certificate: Vec<u8>,
    principal: vouch_schema::Address,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner").field("principal", &self.principal).finish()
    }
}

impl CheckpointSigner {
    /// A signer from a key and its verifier-role certificate.
    pub fn new(
        key: SigningKey,
        certificate: &SignedDelegation,
    ) -> Result<CheckpointSigner, SignerError> {
        let address = vouch_delegation::keys::address(&key);
        if certificate.delegate != address || certificate.role != Role::Verifier {
            return Err(SignerError::Mismatch {
                delegate: certificate.delegate,
                role: certificate.role,
                key: address,
            });
        }
        Ok(CheckpointSigner {
            key,
            certificate: certificate.encode(),
            principal: certificate.principal,
        })
    }

    /// Loads the signer `config` names, if it names one.
    pub fn load(config: &CheckpointConfig) -> Result<Option<CheckpointSigner>, SignerError> {
        let (key_path, cert_path) = match (&config.key, &config.certificate) {
            (None, None) => return Ok(None),
            (Some(k), Some(c)) => (k, c),
            _ => return Err(SignerError::Incomplete),
        };
        let password = std::env::var("VOUCH_KEY_PASSWORD").ok();
        let key = vouch_delegation::keys::load_signing_key(key_path, password.as_deref())
            .map_err(|source| SignerError::Key { path: key_path.clone(), source })?;
        let bytes = std::fs::read(cert_path).map_err(|e| SignerError::Certificate {
            path: cert_path.clone(),
            problem: e.to_string(),
        })?;
        let cert = SignedDelegation::decode(&bytes).map_err(|e| SignerError::Certificate {
            path: cert_path.clone(),
            problem: e.to_string(),
        })?;
        CheckpointSigner::new(key, &cert).map(Some)
    }

    /// The verifier principal this signer answers for.
    pub fn principal(&self) -> vouch_schema::Address {
        self.principal
    }
}

/// Counters of the convergence subsystem (`vouch_checkpoints_*`).
#[derive(Debug, Default)]
pub struct ConvergeStats {
    /// Own checkpoints made.
    pub own: AtomicU64,
    /// Peers' checkpoints accepted.
    pub peers: AtomicU64,
    /// Disagreements found (own against a peer's, per minute).
    pub disagreements: AtomicU64,
    /// Own signed checkpoints not gossiped (the publish queue was full).
    pub unsent: AtomicU64,
}

/// What the node's subsystems share about convergence: the envelope index
/// and how this verifier's checkpoints are made. (The checkpoint book lives
/// with the scores, fed in log order: [`crate::scores::Scores::checkpoints`].)
#[derive(Debug)]
pub struct Convergence {
    index: Mutex<EnvelopeIndex>,
    network: Eip712Network,
    partitions: PartitionSet,
    signer: Option<CheckpointSigner>,
    /// Counters.
    pub stats: ConvergeStats,
}

/// Where the log stood when a minute's checkpoint was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogHead {
    /// Committed records.
    pub records: u64,
    /// The chain hash after the last one.
    pub hash: [u8; 32],
}

impl Convergence {
    /// Empty index and book for a verifier of `network` following `partitions`.
    pub fn new(
        network: Eip712Network,
        partitions: PartitionSet,
        signer: Option<CheckpointSigner>,
        config: &CheckpointConfig,
    ) -> Convergence {
        let index =
            IndexLimits { max_ids: config.max_index_ids.unwrap_or(IndexLimits::default().max_ids) };
        Convergence {
            index: Mutex::new(EnvelopeIndex::new(index)),
            network,
            partitions,
            signer,
            stats: ConvergeStats::default(),
        }
    }

    /// Declares `vouch_checkpoints_*` and the envelope index's families
    /// (`book_refused`: peer checkpoints the book had no room for; the book
    /// is the scores').
    pub fn encode_metrics(&self, book_refused: u64, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let (ids, evicted) = {
            let index = self.index();
            (index.len() as u64, index.evicted())
        };
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let enc = &mut enc;
        counter(
            enc,
            "vouch_checkpoints_own_total",
            "Own checkpoints made.",
            load(&self.stats.own),
        )?;
        counter(
            enc,
            "vouch_checkpoints_peer_total",
            "Peer verifiers' checkpoints accepted.",
            load(&self.stats.peers),
        )?;
        counter(
            enc,
            "vouch_checkpoints_disagreements_total",
            "Minutes on which a peer's checkpoint differed from ours.",
            load(&self.stats.disagreements),
        )?;
        counter(
            enc,
            "vouch_checkpoints_unsent_total",
            "Own signed checkpoints not gossiped (publish queue full).",
            load(&self.stats.unsent),
        )?;
        counter(
            enc,
            "vouch_checkpoints_refused_total",
            "Peer checkpoints the book had no room for.",
            book_refused,
        )?;
        gauge(enc, "vouch_sync_index_ids", "Envelope ids in the sync index.", ids)?;
        counter(
            enc,
            "vouch_sync_index_evicted_total",
            "Envelope ids dropped from the sync index to stay within its bound.",
            evicted,
        )
    }

    /// The envelope index.
    pub fn index(&self) -> MutexGuard<'_, EnvelopeIndex> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The partitions this verifier follows.
    pub fn partitions(&self) -> PartitionSet {
        self.partitions
    }

    /// The principal this verifier signs checkpoints for, when it signs any.
    pub fn signer(&self) -> Option<vouch_schema::Address> {
        self.signer.as_ref().map(CheckpointSigner::principal)
    }

    /// This verifier's checkpoint of `minute`, from the index and the
    /// buckets sealed for it: signed when a signer is configured (and then
    /// for the log and gossip), else with an empty certificate and a zero
    /// signature (for agreement only).
    pub fn make(
        &self,
        minute: u64,
        sealed: &[SealedBucket],
        policy_hash: &str,
        view_hash: [u8; 32],
        head: LogHead,
    ) -> SignedCheckpoint {
        let (envelopes, root) = self.index().merkle(minute, &self.partitions);
        let checkpoint = Checkpoint {
            network: self.network,
            minute,
            envelopes,
            root,
            buckets: buckets_hash(minute, sealed),
            policy: policy_bytes(policy_hash),
            view: view_hash,
            partitions: self.partitions.bytes(),
            log_records: head.records,
            log_head: head.hash,
        };
        self.stats.own.fetch_add(1, Ordering::Relaxed);
        match &self.signer {
            Some(s) => checkpoint.sign(&s.key, s.certificate.clone()),
            None => SignedCheckpoint {
                checkpoint,
                certificate: Vec::new(),
                signature: Signature([0; 65]),
            },
        }
    }
}

/// blake3 of the JSON of the buckets sealed for `minute` (in the engine's
/// order: by key), the hash a checkpoint commits the scores with.
pub fn buckets_hash(minute: u64, sealed: &[SealedBucket]) -> [u8; 32] {
    let start = minute * MINUTE_MS;
    let of_minute: Vec<&SealedBucket> =
        sealed.iter().filter(|b| b.minute_start_ms == start).collect();
    // Plain data with string keys serializes without error.
    *blake3::hash(&serde_json::to_vec(&of_minute).unwrap_or_default()).as_bytes()
}

/// A policy hash (`0x` + 64 hex digits) as bytes; zeros if it is not one.
fn policy_bytes(hash: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(b) = hex::decode(hash.trim_start_matches("0x"))
        && b.len() == 32
    {
        out.copy_from_slice(&b);
    }
    out
}
