//! What an auditor proves with a verifier's log and its signed checkpoints.
//!
//! A verifier's checkpoint of a minute commits to the Merkle root over the
//! ids of the envelopes it had accepted with timestamps in that minute when
//! the minute sealed. Reading the log back, those are the envelope records
//! of the minute that precede the verifier's own checkpoint record of it.
//! From that, [`prove`] gives one envelope's inclusion proof against the
//! checkpoint (RFC 9162 audit path), and [`compare`] holds the log against
//! checkpoints someone published (this verifier's or another's) and names
//! the first minute where the log omits or adds envelopes.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use vouch_delegation::{SignedCheckpoint, SignedDelegation};
use vouch_schema::Envelope;
use vouch_schema::merkle::{self, Hash};

use crate::store::{LogError, LogReader, RecordKind};

/// One minute as the log holds it.
#[derive(Debug, Default)]
struct Minute {
    /// Envelope ids and their record indexes, in log order.
    envelopes: Vec<(Hash, u64)>,
    /// The log's own checkpoint of the minute, and how many of the
    /// envelopes above preceded it.
    checkpoint: Option<(SignedCheckpoint, usize)>,
}

impl Minute {
    /// The ids the minute's checkpoint covers (all, without one), sorted.
    fn leaves(&self) -> Vec<Hash> {
        let n = self.checkpoint.as_ref().map_or(self.envelopes.len(), |(_, n)| *n);
        let mut ids: Vec<Hash> = self.envelopes[..n].iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Why a proof or a comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The log cannot be read.
    #[error("{0}")]
    Log(#[from] LogError),
    /// No envelope with this id is in the log.
    #[error("no envelope {id} in the log")]
    NotInLog {
        /// The envelope id asked for.
        id: String,
    },
    /// The envelope's minute has no checkpoint of the log's verifier.
    #[error("minute {0} has no checkpoint in the log (not sealed yet, or before checkpoints)")]
    NoCheckpoint(u64),
    /// The envelope was accepted after its minute's checkpoint (late).
    #[error(
        "envelope {id} was logged after its minute's checkpoint (late): no checkpoint covers it"
    )]
    Late {
        /// The envelope id asked for.
        id: String,
    },
    /// The log's own checkpoint does not match the envelopes before it.
    #[error("the log's checkpoint of minute {0} does not match the envelopes it holds")]
    Inconsistent(u64),
}

/// Reads every envelope id and own checkpoint of the log, by minute.
fn minutes(dir: &Path) -> Result<BTreeMap<u64, Minute>, ProofError> {
    let reader = match LogReader::open(dir, 0) {
        Err(LogError::NotInLog { first, .. }) => LogReader::open(dir, first),
        other => other,
    }?;
    let mut out: BTreeMap<u64, Minute> = BTreeMap::new();
    for record in reader {
        let record = record?;
        match record.kind {
            RecordKind::Envelope => {
                if let Ok(e) = Envelope::decode(&record.payload) {
                    let m = out.entry(e.id.timestamp / 60_000).or_default();
                    m.envelopes.push((merkle::envelope_id(&record.payload), record.position.index));
                }
            }
            RecordKind::Checkpoint => {
                if let Ok(c) = SignedCheckpoint::decode(&record.payload) {
                    let m = out.entry(c.checkpoint.minute).or_default();
                    let n = m.envelopes.len();
                    m.checkpoint.get_or_insert((c, n));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A published checkpoint, as a proof names it.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointRef {
    /// The signer's principal, when signed.
    pub verifier: Option<vouch_schema::Address>,
    /// Whether it is signed.
    pub signed: bool,
    /// The signed note.
    pub note: String,
    /// The wire encoding, base64.
    pub cbor: String,
}

impl CheckpointRef {
    fn of(c: &SignedCheckpoint) -> CheckpointRef {
        use base64::Engine as _;
        CheckpointRef {
            verifier: SignedDelegation::decode(&c.certificate).ok().map(|d| d.principal),
            signed: !c.certificate.is_empty(),
            note: c.note(),
            cbor: base64::engine::general_purpose::STANDARD.encode(c.encode()),
        }
    }
}

/// An envelope's inclusion proof against its minute's checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Proof {
    /// The envelope id (blake3 of its bytes), hex.
    pub envelope: String,
    /// Its record index in the log.
    pub log_index: u64,
    /// The minute (of the envelope's timestamp).
    pub minute: u64,
    /// Its leaf's index among the minute's sorted ids.
    pub leaf_index: u64,
    /// Leaves in the minute's tree (the checkpoint's `envelopes`).
    pub tree_size: u64,
    /// The audit path, bottom up, hex.
    pub path: Vec<String>,
    /// The tree's root (the checkpoint's `root`), hex.
    pub root: String,
    /// The checkpoint it proves against.
    pub checkpoint: CheckpointRef,
}

/// The inclusion proof of envelope `id` (hex of blake3 of its bytes, as
/// `vouch export ndjson` prints in `envelope_hash`) in the log at `dir`.
pub fn prove(dir: &Path, id: &str) -> Result<Proof, ProofError> {
    let want: Hash = hex::decode(id.trim_start_matches("0x"))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ProofError::NotInLog { id: id.to_owned() })?;
    let all = minutes(dir)?;
    let (minute, m, log_index) = all
        .iter()
        .find_map(|(minute, m)| {
            m.envelopes.iter().position(|(e, _)| *e == want).map(|i| (*minute, m, m.envelopes[i].1))
        })
        .ok_or_else(|| ProofError::NotInLog { id: id.to_owned() })?;
    let (checkpoint, before) = m.checkpoint.as_ref().ok_or(ProofError::NoCheckpoint(minute))?;
    if !m.envelopes[..*before].iter().any(|(e, _)| *e == want) {
        return Err(ProofError::Late { id: id.to_owned() });
    }
    let leaves = m.leaves();
    let root = merkle::root(&leaves);
    if root != checkpoint.checkpoint.root || leaves.len() as u64 != checkpoint.checkpoint.envelopes
    {
        return Err(ProofError::Inconsistent(minute));
    }
    let leaf_index = leaves.binary_search(&want).map_err(|_| ProofError::Inconsistent(minute))?;
    let path = merkle::inclusion_proof(&leaves, leaf_index).unwrap_or_default();
    Ok(Proof {
        envelope: hex::encode(want),
        log_index,
        minute,
        leaf_index: leaf_index as u64,
        tree_size: leaves.len() as u64,
        path: path.iter().map(hex::encode).collect(),
        root: hex::encode(root),
        checkpoint: CheckpointRef::of(checkpoint),
    })
}

/// How a log compares with published checkpoints.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Checkpoints compared (minutes the log covers).
    pub compared: u64,
    /// Checkpoints of minutes the log does not reach (before its first
    /// record, or after its last).
    pub outside: u64,
    /// The first minute where the log and a checkpoint differ.
    pub first_difference: Option<Difference>,
}

/// A minute where the log holds other envelopes than a checkpoint commits to.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// The minute.
    pub minute: u64,
    /// The checkpoint's signer.
    pub verifier: Option<vouch_schema::Address>,
    /// Envelopes the checkpoint commits to.
    pub checkpoint_envelopes: u64,
    /// Envelopes of the minute the log holds (before its own checkpoint of it).
    pub log_envelopes: u64,
    /// `omits` (fewer), `adds` (more) or `differs` (as many, other ones).
    pub kind: &'static str,
}

/// Holds the log at `dir` against `published` checkpoints (any verifier's).
pub fn compare(dir: &Path, published: &[SignedCheckpoint]) -> Result<Comparison, ProofError> {
    let all = minutes(dir)?;
    let (first, last) = match (all.keys().next(), all.keys().next_back()) {
        (Some(f), Some(l)) => (*f, *l),
        _ => (u64::MAX, 0),
    };
    let mut sorted: Vec<&SignedCheckpoint> = published.iter().collect();
    sorted.sort_by_key(|c| c.checkpoint.minute);
    let mut out = Comparison { compared: 0, outside: 0, first_difference: None };
    for c in sorted {
        let minute = c.checkpoint.minute;
        if minute < first || minute > last {
            out.outside += 1;
            continue;
        }
        out.compared += 1;
        let leaves = all.get(&minute).map(Minute::leaves).unwrap_or_default();
        let (have, want) = (leaves.len() as u64, c.checkpoint.envelopes);
        if merkle::root(&leaves) != c.checkpoint.root || have != want {
            out.first_difference.get_or_insert(Difference {
                minute,
                verifier: SignedDelegation::decode(&c.certificate).ok().map(|d| d.principal),
                checkpoint_envelopes: want,
                log_envelopes: have,
                kind: match have.cmp(&want) {
                    std::cmp::Ordering::Less => "omits",
                    std::cmp::Ordering::Greater => "adds",
                    std::cmp::Ordering::Equal => "differs",
                },
            });
        }
    }
    Ok(out)
}
