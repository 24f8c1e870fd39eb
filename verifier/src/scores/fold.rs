//! The log → engine fold: the one way scores are rebuilt from a log.
//!
//! A log holds, in order, the envelopes a verifier accepted, the authority
//! views it recorded, and the score records (policy, seals) that make its
//! answers reproducible. [`Scores::fold`] applies one of them; the node's
//! warm-up (and `vouch node --rebuild-state`, a warm-up from the first
//! record) feeds it its own log's records through [`Scores::fold_logged`],
//! and `vouch replay --sla` feeds it what the replay verified
//! ([`crate::replay::replay_scores`]). Same records, same order, same
//! answers.

use vouch_delegation::authority::AuthorityView;
use vouch_delegation::{SignedCheckpoint, SignedDelegation};
use vouch_schema::{DecodedBatch, Envelope};
use vouch_sla::Observer;

use super::{ScoreError, ScoreRecord, Scores, logged, observer_of};
use crate::converge::{Added, Disagreement};
use crate::store::RecordKind;

/// One log record, as the scores see it.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// An accepted envelope, decoded, and who signed it.
    Envelope {
        /// The signer, from the envelope's certificate.
        observer: &'a Observer,
        /// The envelope.
        envelope: &'a Envelope,
        /// Its batch.
        batch: &'a DecodedBatch,
    },
    /// The authority view in force from here on.
    View(&'a AuthorityView),
    /// A score record's payload (a [`ScoreRecord`]: the policy, or a seal).
    Record(&'a [u8]),
    /// A verifier's checkpoint of a sealed minute: this verifier's own, or a
    /// peer's (already verified by whoever logged or replays it).
    Checkpoint {
        /// The checkpoint.
        signed: &'a SignedCheckpoint,
        /// Whether this log's verifier made it.
        own: bool,
    },
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Folded {
    /// An envelope's events went to the engine.
    Scored,
    /// A view or a score record was applied.
    Applied,
    /// This verifier's checkpoint went into the book; the peers on record
    /// that disagree with it.
    OwnCheckpoint(Vec<Disagreement>),
    /// A peer's checkpoint, and what adding it did.
    PeerCheckpoint(Added),
    /// Nothing for the scores (revocations).
    Skipped,
}

impl Scores {
    /// Applies one record, in log order.
    pub fn fold(&self, step: Step<'_>) -> Result<Folded, ScoreError> {
        match step {
            Step::Envelope { observer, envelope, batch } => {
                self.ingest(observer, envelope.id.timestamp, batch);
                Ok(Folded::Scored)
            }
            Step::View(view) => {
                self.set_authority(view);
                Ok(Folded::Applied)
            }
            Step::Checkpoint { signed, own: true } => {
                Ok(Folded::OwnCheckpoint(self.checkpoints().add_own(signed.clone())))
            }
            Step::Checkpoint { signed, own: false } => {
                let verifier =
                    SignedDelegation::decode(&signed.certificate).map_err(logged)?.principal;
                Ok(Folded::PeerCheckpoint(self.checkpoints().add_peer(verifier, signed.clone())))
            }
            Step::Record(payload) => {
                if let ScoreRecord::SlaSeal { now_ms } = ScoreRecord::decode(payload)? {
                    self.seal(now_ms);
                }
                // Policy records announce the files the log was scored
                // with: a replay opens its engine with them
                // (`recorded_policy`), a node scores with its own.
                Ok(Folded::Applied)
            }
        }
    }

    /// Applies one record of this verifier's own log (kind and payload as
    /// stored). Envelopes are not verified again: the log holds only what
    /// this verifier accepted, and its chain was checked when it was opened.
    pub fn fold_logged(&self, kind: RecordKind, payload: &[u8]) -> Result<Folded, ScoreError> {
        match kind {
            RecordKind::Envelope => {
                let envelope = Envelope::decode(payload).map_err(logged)?;
                let batch = DecodedBatch::decode(&envelope.content).map_err(logged)?;
                let observer = observer_of(&batch)?;
                self.fold(Step::Envelope {
                    observer: &observer,
                    envelope: &envelope,
                    batch: &batch,
                })
            }
            RecordKind::AuthorityView => {
                let view: AuthorityView = serde_json::from_slice(payload)?;
                self.fold(Step::View(&view))
            }
            RecordKind::Scores => self.fold(Step::Record(payload)),
            RecordKind::Checkpoint | RecordKind::PeerCheckpoint => {
                let signed = SignedCheckpoint::decode(payload).map_err(logged)?;
                self.fold(Step::Checkpoint { signed: &signed, own: kind == RecordKind::Checkpoint })
            }
            RecordKind::Revocation => Ok(Folded::Skipped),
        }
    }
}
