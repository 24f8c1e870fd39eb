//! Replay and audit (DESIGN.md §10): verify everything a verifier's log
//! holds, with the authority view and revocations the log itself recorded,
//! and hand every verified envelope, in log order, to a consumer (the SLA
//! aggregation rebuilds its answers from them).
//!
//! 1. The whole hash chain is checked first ([`crate::store::verify`]:
//!    every frame, every segment header's anchor, `HEAD`).
//! 2. The log is then read in order ([`LogReader`]). Authority views and
//!    revocations are applied at their positions: the last view recorded
//!    before an envelope is the view in force for it, and a revocation
//!    recorded before it applies to it (DESIGN.md §4). A revocation must be
//!    signed by a principal of the view in force at its position, as the
//!    node checked when it accepted it. Every recorded revocation stays in
//!    force for the rest of the replay: the node's per-principal bound on
//!    revocations of delegates it never saw depended on what it had seen
//!    since it started, which the log does not record, so a delegate whose
//!    revocation the node evicted that way and that published afterwards is
//!    reported here as revoked.
//! 3. Envelopes are checked on every core (`parallel`) and come back in
//!    log order, so the failure reported is the first in the log, by record
//!    index, segment file and byte offset. A chain failure found in step 1
//!    is reported at its frame, unless an earlier record fails first.
//!
//! What "valid" means for an audit is in the `verify` module's docs: every check the
//! node made at arrival except those that depended on its wall clock then.

mod parallel;
pub mod proof;
mod verify;

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::Serialize;
use vouch_delegation::authority::AuthorityView;
use vouch_delegation::{SignedCheckpoint, VerifiedDelegation};
use vouch_schema::{DecodedBatch, Envelope};

use vouch_sla::Observer;

use crate::scores::{ScoreError, Scores, Step, recorded_policy};
use crate::store::{LogError, LogReader, Position, RecordKind, segment_file_name};
use crate::validate::ValidationConfig;

pub use verify::RecordProblem;

use parallel::{Done, Item, Other};
use verify::{EnvelopeJob, Revocations};

use crate::validate::rules::Rules;

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The node's validation settings: the EIP-712 network, certificate
    /// policy, stream path and telemetry roles are applied; limits that
    /// depend on arrival time are not.
    pub validation: ValidationConfig,
    /// Envelope-checking threads; 0 means one per available core.
    pub threads: usize,
    /// The view in force before the first view the log records (for a log
    /// whose first view was pruned away with its segment); `None` makes an
    /// envelope before any recorded view a failure.
    pub initial_view: Option<AuthorityView>,
    /// Advanced once per record; hidden unless the caller made it visible.
    pub progress: ProgressBar,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            validation: ValidationConfig::default(),
            threads: 0,
            initial_view: None,
            progress: ProgressBar::hidden(),
        }
    }
}

/// One envelope that passed every check, handed over in log order.
#[derive(Debug, Clone, Copy)]
pub struct ReplayedBatch<'a> {
    /// Its record index in the log.
    pub index: u64,
    /// Where it is (segment, offset, chain hash).
    pub position: &'a Position,
    /// The decoded envelope.
    pub envelope: &'a Envelope,
    /// Its decoded telemetry batch.
    pub batch: &'a DecodedBatch,
    /// Its verified certificate: principal, delegate, role, region.
    pub certificate: &'a VerifiedDelegation,
    /// The envelope's timestamp, ms since the Unix epoch (publisher clock).
    pub timestamp_ms: u64,
}

/// What a replay hands over, in log order.
#[derive(Debug, Clone, Copy)]
pub enum Replayed<'a> {
    /// An envelope that passed every check.
    Batch(ReplayedBatch<'a>),
    /// An authority view recorded in the log: in force from here on.
    View {
        /// Its record index.
        index: u64,
        /// The view.
        view: &'a AuthorityView,
    },
    /// A score record (the scores' policy, or a seal), chain-checked.
    Record {
        /// Its record index.
        index: u64,
        /// Its payload.
        payload: &'a [u8],
    },
    /// A verifier's checkpoint of a sealed minute: the log's own (its
    /// signature checked when it has one), or a peer's (certificate,
    /// signature and verifier standing in the recorded view checked).
    Checkpoint {
        /// Its record index.
        index: u64,
        /// The checkpoint.
        signed: &'a SignedCheckpoint,
        /// Whether the log's verifier made it.
        own: bool,
    },
}

/// An authority view the log recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedView {
    /// Its record index.
    pub index: u64,
    /// Its hash (`AuthorityView::hash`), hex.
    pub hash: String,
}

/// What a successful replay checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplaySummary {
    /// Segment files.
    pub segments: u64,
    /// Committed records checked (all kinds).
    pub records: u64,
    /// Envelopes verified.
    pub envelopes: u64,
    /// Events in them.
    pub events: u64,
    /// Revocations applied.
    pub revocations: u64,
    /// Score records: the SLA policy and seals (chain-checked only).
    pub score_records: u64,
    /// This verifier's checkpoints of sealed minutes.
    pub checkpoints: u64,
    /// Peers' checkpoints it logged.
    pub peer_checkpoints: u64,
    /// Authority views recorded, in order.
    pub views: Vec<RecordedView>,
    /// Index of the first record present (above 0 when a prefix was pruned).
    pub first_index: Option<u64>,
    /// Index of the last committed record.
    pub last_index: Option<u64>,
    /// The chain hash after the last committed record, hex (the segment
    /// anchor of an empty log).
    pub head_hash: String,
    /// Whole records beyond `HEAD` (never committed; not replayed).
    pub uncommitted: u64,
    /// Envelope-checking threads used.
    pub threads: usize,
    /// Wall time of the whole replay, ms.
    pub elapsed_ms: u64,
    /// Events verified per second of wall time.
    pub events_per_sec: f64,
    /// Envelopes verified per second of wall time.
    pub envelopes_per_sec: f64,
}

/// Why a replay failed. Messages are stable and name the record.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A record (or its segment's header) is bad.
    #[error("record {index}: {segment} offset {offset}: {problem}")]
    Record {
        /// The record's index (for a bad segment header, the segment's first index).
        index: u64,
        /// The segment file name.
        segment: String,
        /// Byte offset of the frame (0: the segment header).
        offset: u64,
        /// What is wrong.
        problem: RecordProblem,
    },
    /// The log cannot be read (i/o, `HEAD`, a pruned start).
    #[error("{0}")]
    Log(LogError),
    /// A replay thread could not be started.
    #[error("starting replay threads: {0}")]
    Threads(std::io::Error),
    /// The scores cannot be rebuilt: the log records no SLA policy, or one
    /// that does not load.
    #[error("scores: {0}")]
    Scores(#[from] crate::scores::ScoreError),
}

impl ReplayError {
    fn at(position: &Position, problem: RecordProblem) -> ReplayError {
        ReplayError::Record {
            index: position.index,
            segment: segment_file_name(position.segment),
            offset: position.offset,
            problem,
        }
    }

    /// A reader error at the record index the reader was about to yield.
    fn from_log(e: LogError, index: u64) -> ReplayError {
        match e {
            LogError::Corrupt { segment, offset, problem } => ReplayError::Record {
                index,
                segment,
                offset,
                problem: RecordProblem::Chain(problem),
            },
            other => ReplayError::Log(other),
        }
    }

    /// The record index of the failure, when it is at a record.
    pub fn index(&self) -> Option<u64> {
        match self {
            ReplayError::Record { index, .. } => Some(*index),
            _ => None,
        }
    }
}

/// Verifies the whole log in `dir` and calls `on_record` for every envelope
/// that verified and every checkpoint record, in log order. Stops at the
/// first bad record (in log order) and names it; `on_record` has then seen
/// exactly the records before it.
pub fn replay(
    dir: impl AsRef<Path>,
    options: &ReplayOptions,
    mut on_record: impl FnMut(Replayed<'_>),
) -> Result<ReplaySummary, ReplayError> {
    let started = Instant::now();
    let dir = dir.as_ref();
    let progress = &options.progress;
    progress.set_message("checking the hash chain");
    if !progress.is_hidden() {
        progress.enable_steady_tick(Duration::from_millis(200));
    }
    // Step 1: the whole chain. A corrupt frame is reported when the ordered
    // pass reaches it, so an earlier bad envelope still comes first.
    let (chain, corrupt) = match crate::store::verify(dir) {
        Ok(summary) => (Some(summary), None),
        Err(LogError::Corrupt { segment, offset, problem }) => {
            let at = parse_segment(&segment).map(|s| (s, offset));
            (None, Some(Corrupt { at, segment, offset, problem }))
        }
        Err(e) => return Err(ReplayError::Log(e)),
    };
    let reader = match LogReader::open(dir, chain.as_ref().map_or(0, |c| c.first_index)) {
        // The chain check failed before it found the first index: start at the first present.
        Err(LogError::NotInLog { first, .. }) if chain.is_none() => LogReader::open(dir, first),
        other => other,
    }
    .map_err(ReplayError::Log)?;
    let first = reader.next_index();
    progress.set_length(reader.end().saturating_sub(first));
    progress.set_message("verifying signatures");
    let rules = Arc::new(Rules::new(&options.validation));
    let source = Source {
        reader,
        corrupt,
        rules: Arc::clone(&rules),
        view: options.initial_view.clone().map(canonical).map(|v| {
            let hash = v.hash();
            (Arc::new(v), hash)
        }),
        revocations: Arc::new(Revocations::new()),
        done: false,
    };
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut summary = ReplaySummary {
        segments: chain.as_ref().map_or(0, |c| c.segments),
        records: 0,
        envelopes: 0,
        events: 0,
        revocations: 0,
        score_records: 0,
        checkpoints: 0,
        peer_checkpoints: 0,
        views: Vec::new(),
        first_index: None,
        last_index: None,
        head_hash: hex::encode(chain.as_ref().map_or([0; 32], |c| c.anchor)),
        uncommitted: chain.as_ref().map_or(0, |c| c.uncommitted),
        threads,
        elapsed_ms: 0,
        events_per_sec: 0.0,
        envelopes_per_sec: 0.0,
    };
    parallel::run(source, threads, rules, |done| {
        let position = match done {
            Done::Envelope(position, _) | Done::Other(position, _) => *position,
            Done::Fail(_) => return ControlFlow::Break(()),
        };
        summary.records += 1;
        summary.first_index.get_or_insert(position.index);
        summary.last_index = Some(position.index);
        summary.head_hash = hex::encode(position.hash);
        progress.inc(1);
        match done {
            Done::Envelope(_, checked) => {
                summary.envelopes += 1;
                summary.events += checked.batch.len() as u64;
                on_record(Replayed::Batch(ReplayedBatch {
                    index: position.index,
                    position: &position,
                    envelope: &checked.envelope,
                    batch: &checked.batch,
                    certificate: &checked.certificate,
                    timestamp_ms: checked.envelope.id.timestamp,
                }));
            }
            Done::Other(_, Other::View(view, hash)) => {
                summary.views.push(RecordedView { index: position.index, hash: hex::encode(hash) });
                on_record(Replayed::View { index: position.index, view });
            }
            Done::Other(_, Other::Revocation) => summary.revocations += 1,
            Done::Other(_, Other::Scores(payload)) => {
                summary.score_records += 1;
                on_record(Replayed::Record { index: position.index, payload });
            }
            Done::Other(_, Other::Checkpoint(signed, own)) => {
                if *own {
                    summary.checkpoints += 1;
                } else {
                    summary.peer_checkpoints += 1;
                }
                on_record(Replayed::Checkpoint { index: position.index, signed, own: *own });
            }
            Done::Fail(_) => {}
        }
        ControlFlow::Continue(())
    })?;
    progress.finish_and_clear();
    let elapsed = started.elapsed();
    let secs = elapsed.as_secs_f64().max(1e-9);
    summary.elapsed_ms = elapsed.as_millis() as u64;
    summary.events_per_sec = summary.events as f64 / secs;
    summary.envelopes_per_sec = summary.envelopes as f64 / secs;
    Ok(summary)
}

/// Replays the log in `dir` and rebuilds its scores with the policy, limits
/// and seals it recorded, folding every verified record in log order
/// ([`Scores::fold`]): what `vouch replay --sla` serves, byte for byte the
/// node's answers for sealed windows.
pub fn replay_scores(
    dir: impl AsRef<Path>,
    options: &ReplayOptions,
) -> Result<(ReplaySummary, Scores), ReplayError> {
    let dir = dir.as_ref();
    let files = recorded_policy(dir)?.ok_or(ScoreError::NoPolicy)?;
    let (scores, _) = Scores::open(&files, None)?;
    let summary = replay(dir, options, |record| {
        let (index, step) = match record {
            Replayed::Batch(b) => {
                let observer = Observer::from(b.certificate);
                let step =
                    Step::Envelope { observer: &observer, envelope: b.envelope, batch: b.batch };
                (b.index, scores.fold(step))
            }
            Replayed::View { index, view } => (index, scores.fold(Step::View(view))),
            Replayed::Record { index, payload } => (index, scores.fold(Step::Record(payload))),
            Replayed::Checkpoint { index, signed, own } => {
                (index, scores.fold(Step::Checkpoint { signed, own }))
            }
        };
        if let Err(e) = step {
            tracing::warn!(index, %e, "record not understood by the scores");
        }
    })?;
    Ok((summary, scores))
}

/// The first chain failure [`crate::store::verify`] found.
#[derive(Debug)]
struct Corrupt {
    /// (segment first index, offset), to compare positions in log order.
    at: Option<(u64, u64)>,
    segment: String,
    offset: u64,
    problem: crate::store::Problem,
}

/// A segment file's first index, from its name.
fn parse_segment(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?.strip_suffix(".vlog")?.parse().ok()
}

/// A view rebuilt through [`AuthorityView::new`], so lookups see it sorted
/// and merged whatever order the recorded JSON had.
fn canonical(view: AuthorityView) -> AuthorityView {
    AuthorityView::new(view.source, view.principals)
}

/// Walks the log in order, applying views and revocations at their
/// positions and attaching the ones in force to each envelope.
struct Source {
    reader: LogReader,
    corrupt: Option<Corrupt>,
    rules: Arc<Rules>,
    view: Option<(Arc<AuthorityView>, [u8; 32])>,
    revocations: Arc<Revocations>,
    done: bool,
}

impl Source {
    /// The chain failure, reported at the record index the reader reached.
    fn corrupt_here(&mut self, index: u64) -> Option<Item> {
        let c = self.corrupt.take()?;
        Some(Item::Fail(ReplayError::Record {
            index,
            segment: c.segment,
            offset: c.offset,
            problem: RecordProblem::Chain(c.problem),
        }))
    }

    fn fail(&mut self, item: Item) -> Option<Item> {
        self.done = true;
        Some(item)
    }

    fn record(&mut self, record: crate::store::Record) -> Item {
        let position = record.position;
        match record.kind {
            RecordKind::Envelope => Item::Envelope(Box::new(EnvelopeJob {
                position,
                bytes: record.payload,
                view: self.view.as_ref().map(|(view, _)| Arc::clone(view)),
                revocations: Arc::clone(&self.revocations),
            })),
            RecordKind::AuthorityView => {
                match serde_json::from_slice::<AuthorityView>(&record.payload) {
                    Ok(view) => {
                        let view = canonical(view);
                        let hash = view.hash();
                        let view = Arc::new(view);
                        self.view = Some((Arc::clone(&view), hash));
                        Item::Other(position, Other::View(view, hash))
                    }
                    Err(e) => {
                        Item::Fail(ReplayError::at(&position, RecordProblem::BadView(e.into())))
                    }
                }
            }
            RecordKind::Revocation => match self.revocation(&record.payload) {
                Ok(()) => Item::Other(position, Other::Revocation),
                Err(problem) => Item::Fail(ReplayError::at(&position, problem)),
            },
            RecordKind::Scores => Item::Other(position, Other::Scores(record.payload)),
            RecordKind::Checkpoint | RecordKind::PeerCheckpoint => {
                let own = record.kind == RecordKind::Checkpoint;
                match self.checkpoint(&record.payload, own) {
                    Ok(signed) => Item::Other(position, Other::Checkpoint(Box::new(signed), own)),
                    Err(problem) => Item::Fail(ReplayError::at(&position, problem)),
                }
            }
        }
    }

    /// Checks a recorded checkpoint: a peer's as the node did when it came
    /// (certificate, signature, verifier standing in the view in force
    /// here); the log's own only for its signature, when it has one (a
    /// verifier without a key logs its checkpoints unsigned).
    fn checkpoint(&self, payload: &[u8], own: bool) -> Result<SignedCheckpoint, RecordProblem> {
        let bad = |e| RecordProblem::BadCheckpoint(Box::new(e));
        let signed = SignedCheckpoint::decode(payload)
            .map_err(|e| bad(crate::validate::ValidationError::MalformedCheckpoint(e)))?;
        if own && signed.certificate.is_empty() {
            return Ok(signed);
        }
        let verified = self.rules.checkpoint(payload).map_err(bad)?;
        if !own {
            let (view, _) = self.view.as_ref().ok_or(RecordProblem::NoAuthorityView)?;
            Rules::checkpointer(view, &verified).map_err(bad)?;
        }
        Ok(signed)
    }

    /// Verifies a recorded revocation, checks its signer against the view in
    /// force here, and applies it from here on.
    fn revocation(&mut self, payload: &[u8]) -> Result<(), RecordProblem> {
        let r = self
            .rules
            .revocation(payload)
            .map_err(|e| RecordProblem::BadRevocation(Box::new(e)))?;
        let (view, hash) = self.view.as_ref().ok_or(RecordProblem::NoAuthorityView)?;
        if Rules::revoker(view, &r).is_err() {
            return Err(RecordProblem::UnauthorizedRevocation {
                principal: r.principal(),
                view: hex::encode(hash),
            });
        }
        // Same rule as the node: an earlier revokedAt for the same pair wins.
        let at = r.revoked_at().saturating_mul(1000);
        let entry =
            Arc::make_mut(&mut self.revocations).entry((r.principal(), r.delegate())).or_insert(at);
        *entry = (*entry).min(at);
        Ok(())
    }
}

impl Iterator for Source {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if self.done {
            return None;
        }
        let index = self.reader.next_index();
        match self.reader.next() {
            None => {
                let corrupt = self.corrupt_here(index);
                self.done = true;
                corrupt
            }
            Some(Err(e)) => match self.corrupt_here(index) {
                // The chain check's finding is at or before wherever the reader failed.
                Some(item) => self.fail(item),
                None => self.fail(Item::Fail(ReplayError::from_log(e, index))),
            },
            Some(Ok(record)) => {
                let p = record.position;
                let reached = self.corrupt.as_ref().is_some_and(|c| {
                    c.at.is_none_or(|(segment, offset)| (p.segment, p.offset) >= (segment, offset))
                });
                if reached {
                    return self.corrupt_here(p.index).and_then(|item| self.fail(item));
                }
                let item = self.record(record);
                if matches!(item, Item::Fail(_)) {
                    return self.fail(item);
                }
                Some(item)
            }
        }
    }
}
