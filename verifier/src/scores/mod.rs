//! Scores from the log: the SLA engine ([`vouch_sla::Engine`]) fed with
//! what the verifier accepted, the records that make its answers
//! reproducible, and the HTTP API's view of it ([`crate::api::SlaSource`]).
//!
//! The engine's answers depend on its policy and on when minutes were
//! sealed relative to arrivals (a late event for a sealed minute is dropped).
//! So the node writes both into its log as checkpoint records
//! records ([`ScoreRecord`]): the policy and model registry in force, and
//! every seal with the clock reading it used. An auditor replaying the log
//! applies the same records at the same positions and gets the same bytes.

mod fold;
mod source;

pub use fold::{Folded, Step};

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use serde::{Deserialize, Serialize};
use vouch_delegation::SignedDelegation;
use vouch_delegation::authority::AuthorityView;
use vouch_net::metrics::{counter, counter_family, gauge, gauge_family};
use vouch_schema::DecodedBatch;
use vouch_sla::{Engine, IngestReport, Limits, Observer, Policy, Registry, SealedBucket, SlaError};

use crate::converge::{Agreement, BookLimits, CheckpointBook};
use crate::store::{LogReader, RecordKind};
use crate::validate::Verified;

/// A [`RecordKind::Scores`] record of the scores (JSON, tagged by `kind`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScoreRecord {
    /// The policy and model registry in force from here on (their TOML text).
    SlaPolicy {
        /// The SLA policy file: the primary policy, whose buckets the
        /// verifier's checkpoints sign and whose answers are the default.
        policy_toml: String,
        /// Further policies scored side by side (absent when none).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        also: Vec<String>,
        /// The model registry file.
        registry_toml: String,
        /// The engine's bounds (absent in logs written before they were
        /// recorded: the defaults of that time apply).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limits: Option<Limits>,
    },
    /// Minutes sealed with the clock at `now_ms`.
    SlaSeal {
        /// The verifier's clock when it sealed, ms since the Unix epoch.
        now_ms: u64,
    },
}

/// Why a score record or a logged envelope could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// A checkpoint record that is not a [`ScoreRecord`].
    #[error("score record: {0}")]
    Record(#[from] serde_json::Error),
    /// The recorded policy or registry does not parse.
    #[error("recorded SLA policy: {0}")]
    Policy(#[from] SlaError),
    /// A logged envelope, its batch, certificate or a logged checkpoint does
    /// not decode (the log is not a verifier's); the decoder's error is the source.
    #[error("logged envelope: {0}")]
    Envelope(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The log could not be read.
    #[error("log: {0}")]
    Log(#[from] crate::store::LogError),
    /// A snapshot file that is not a scores snapshot of this version.
    #[error("scores snapshot: {0}")]
    Snapshot(&'static str),
    /// The engine part of a snapshot does not restore.
    #[error("scores snapshot: {0}")]
    Engine(#[source] vouch_sla::SlaError),
    /// Two policies of one node share a name (`{id}-v{version}`), so a
    /// query could not tell them apart.
    #[error("SLA policy {name} is named twice")]
    DuplicatePolicy {
        /// The name given twice.
        name: String,
    },
    /// More policies than [`MAX_POLICIES`].
    #[error("{given} SLA policies configured; a node scores at most {MAX_POLICIES}")]
    TooManyPolicies {
        /// Policies named (the primary and `also`).
        given: usize,
    },
    /// A query names a policy this verifier does not score.
    #[error("unknown policy {given:?}; this verifier scores {known}")]
    UnknownPolicy {
        /// The name asked for.
        given: String,
        /// The names it scores, comma-separated.
        known: String,
    },
    /// The log records no SLA policy: it was not written by a scoring node.
    #[error("the log records no SLA policy (not written by a scoring node)")]
    NoPolicy,
}

impl ScoreRecord {
    /// The record's bytes in the log.
    pub fn encode(&self) -> Vec<u8> {
        // Plain data with string keys serializes into memory without error.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a checkpoint record's payload.
    pub fn decode(payload: &[u8]) -> Result<ScoreRecord, ScoreError> {
        Ok(serde_json::from_slice(payload)?)
    }
}

/// The SLA policy a log was scored with: its last policy record (a node
/// that restarts under other files re-scores its whole log with them).
/// `None` when the log records none.
pub fn recorded_policy(log_dir: &std::path::Path) -> Result<Option<PolicyFiles>, ScoreError> {
    let mut last = None;
    let reader = match LogReader::open(log_dir, 0) {
        Err(crate::store::LogError::NotInLog { first, .. }) => LogReader::open(log_dir, first),
        other => other,
    }?;
    for record in reader {
        let record = record?;
        if record.kind != RecordKind::Scores {
            continue;
        }
        if let ScoreRecord::SlaPolicy { policy_toml, also, registry_toml, limits } =
            ScoreRecord::decode(&record.payload)?
        {
            last = Some(PolicyFiles {
                policy_toml,
                also,
                registry_toml,
                limits: limits.unwrap_or_default(),
            });
        }
    }
    Ok(last)
}

/// The policy texts and registry text in force.
#[derive(Debug, Clone)]
pub struct PolicyFiles {
    /// The primary SLA policy's TOML text.
    pub policy_toml: String,
    /// Further policies' TOML texts, scored side by side.
    pub also: Vec<String>,
    /// The model registry's TOML text.
    pub registry_toml: String,
    /// The engine's bounds (each policy's engine has them).
    pub limits: Limits,
}

/// The primary policy a node scores with unless configured otherwise.
pub const DEFAULT_POLICY: &str = "sla-policy-v2";

/// The policies a node scores beside the primary unless configured otherwise.
pub const DEFAULT_ALSO: &[&str] = &["naap-quality-benchmark-v1"];

impl Default for PolicyFiles {
    /// `sla-policy-v2`, with `naap-quality-benchmark-v1` beside it.
    fn default() -> Self {
        let builtin = |name| Policy::builtin_text(name).unwrap_or_default().to_owned();
        PolicyFiles {
            policy_toml: builtin(DEFAULT_POLICY),
            also: DEFAULT_ALSO.iter().map(|n| builtin(n)).collect(),
            registry_toml: vouch_sla::DEFAULT_REGISTRY_TOML.to_owned(),
            limits: Limits::default(),
        }
    }
}

/// Most policies one node scores: each is a whole engine (its sessions,
/// buckets and seal work), so the count bounds the SLA state's multiple.
pub const MAX_POLICIES: usize = 4;

impl PolicyFiles {
    /// Parses every file: the policies (primary first) and the registry.
    pub fn parse(&self) -> Result<(Vec<Policy>, Registry), ScoreError> {
        if 1 + self.also.len() > MAX_POLICIES {
            return Err(ScoreError::TooManyPolicies { given: 1 + self.also.len() });
        }
        let mut policies = Vec::with_capacity(1 + self.also.len());
        for text in std::iter::once(&self.policy_toml).chain(&self.also) {
            let policy = Policy::from_toml(text)?;
            if policies.iter().any(|p: &Policy| p.name() == policy.name()) {
                return Err(ScoreError::DuplicatePolicy { name: policy.name() });
            }
            policies.push(policy);
        }
        Ok((policies, Registry::from_toml(&self.registry_toml)?))
    }

    /// The log record announcing these files.
    pub fn record(&self) -> ScoreRecord {
        ScoreRecord::SlaPolicy {
            policy_toml: self.policy_toml.clone(),
            also: self.also.clone(),
            registry_toml: self.registry_toml.clone(),
            limits: Some(self.limits),
        }
    }
}

/// One minute, ms: the engine's bucket width.
const MINUTE_MS: u64 = 60_000;

/// The engines (one per policy, the primary first) shared between the
/// ingest worker (writer) and the HTTP API (readers). Query answers are
/// cached until the next seal.
///
/// Every policy scores every accepted envelope, so the policies' answers
/// are over the same events; the verifier's checkpoints sign the primary
/// policy's buckets (the agreement they establish is over the envelopes
/// accepted, which every policy shares).
pub struct Scores {
    engines: Vec<RwLock<Engine>>,
    /// `{id}-v{version}` of each engine's policy, in the same order.
    names: Vec<String>,
    /// End of the sealed minutes (ms), to tell whether a seal would advance.
    sealed_end_ms: AtomicU64,
    /// Serialized answers by query, tagged with the seal they reflect.
    answers: Mutex<source::Answers>,
    /// Own and peers' checkpoints, fed in log order.
    book: Mutex<CheckpointBook>,
    /// The book as it stood at the last seal: what answers' `agreement`
    /// reflects, so a replay that stops at the same seal serves the same
    /// bytes whatever checkpoints arrived after it.
    agreement: RwLock<Arc<CheckpointBook>>,
}

impl std::fmt::Debug for Scores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scores").field("policies", &self.names).finish_non_exhaustive()
    }
}

/// Splits a [`Scores::snapshot`] into the engines' bytes and the book.
fn decode_snapshot(bytes: &[u8]) -> Result<(Vec<Vec<u8>>, CheckpointBook), ScoreError> {
    use ciborium::Value;
    let bad = || ScoreError::Snapshot("not a scores snapshot");
    let value: Value = ciborium::from_reader(bytes).map_err(|_| bad())?;
    let Value::Array(mut parts) = value else { return Err(bad()) };
    let (Some(Value::Array(records)), Some(Value::Array(engines))) = (parts.pop(), parts.pop())
    else {
        return Err(bad());
    };
    let engines = engines
        .into_iter()
        .map(|e| match e {
            Value::Bytes(b) => Ok(b),
            _ => Err(bad()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let records = records
        .into_iter()
        .map(|r| match r {
            Value::Array(pair) => match pair.as_slice() {
                [Value::Bool(own), Value::Bytes(b)] => Ok((*own, b.clone())),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let book = CheckpointBook::from_records(BookLimits::default(), &records)
        .map_err(|_| ScoreError::Snapshot("a checkpoint in the snapshot does not decode"))?;
    Ok((engines, book))
}

/// [`ScoreError::Envelope`] of a logged record that does not decode.
pub(crate) fn logged(e: impl std::error::Error + Send + Sync + 'static) -> ScoreError {
    ScoreError::Envelope(Box::new(e))
}

/// Who signed a logged envelope's batch, from its certificate (the log holds
/// only envelopes that verified, so the certificate is not re-verified here).
pub fn observer_of(batch: &DecodedBatch) -> Result<Observer, ScoreError> {
    let cert = SignedDelegation::decode(batch.certificate()).map_err(logged)?;
    Ok(Observer::of(&cert))
}

fn read_lock(engine: &RwLock<Engine>) -> RwLockReadGuard<'_, Engine> {
    engine.read().unwrap_or_else(|p| p.into_inner())
}

fn write_lock(engine: &RwLock<Engine>) -> RwLockWriteGuard<'_, Engine> {
    engine.write().unwrap_or_else(|p| p.into_inner())
}

impl Scores {
    /// Scores over `engines`, the primary first (at least one).
    pub fn new(engines: Vec<Engine>) -> Scores {
        Scores::assemble(engines, CheckpointBook::new(BookLimits::default()))
    }

    fn assemble(engines: Vec<Engine>, book: CheckpointBook) -> Scores {
        let sealed_end_ms = AtomicU64::new(engines.first().map_or(0, |e| e.stats().sealed_end_ms));
        Scores {
            names: engines.iter().map(|e| e.policy().name()).collect(),
            engines: engines.into_iter().map(RwLock::new).collect(),
            sealed_end_ms,
            answers: Mutex::default(),
            agreement: RwLock::new(Arc::new(book.clone())),
            book: Mutex::new(book),
        }
    }

    /// Empty engines under `files`, or those a snapshot (from
    /// [`Scores::snapshot`]) saved under the same files; a snapshot made
    /// under other files, or of another format, is dropped (the caller then
    /// re-reads the log).
    pub fn open(
        files: &PolicyFiles,
        snapshot: Option<&[u8]>,
    ) -> Result<(Scores, bool), ScoreError> {
        let (policies, registry) = files.parse()?;
        if let Some(bytes) = snapshot {
            let restored = decode_snapshot(bytes).and_then(|(engines, book)| {
                if engines.len() != policies.len() {
                    return Err(ScoreError::Snapshot("made under another set of policies"));
                }
                let engines = policies
                    .iter()
                    .zip(&engines)
                    .map(|(policy, bytes)| {
                        Engine::restore(policy.clone(), registry.clone(), files.limits, bytes)
                            .map_err(ScoreError::Engine)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Scores::assemble(engines, book))
            });
            match restored {
                Ok(scores) => return Ok((scores, true)),
                Err(e) => tracing::warn!(%e, "SLA snapshot not usable; rebuilding from the log"),
            }
        }
        let engines = policies
            .into_iter()
            .map(|policy| Engine::new(policy, registry.clone(), files.limits))
            .collect();
        Ok((Scores::new(engines), false))
    }

    /// Read access to the primary policy's engine.
    pub fn read(&self) -> RwLockReadGuard<'_, Engine> {
        // `new` and `open` always hold at least one engine.
        read_lock(&self.engines[0])
    }

    /// Read access to the engine of the policy `name` (`None`: the primary).
    pub fn read_policy(
        &self,
        name: Option<&str>,
    ) -> Result<RwLockReadGuard<'_, Engine>, ScoreError> {
        let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
            return Ok(self.read());
        };
        match self.names.iter().position(|n| n == name) {
            Some(i) => Ok(read_lock(&self.engines[i])),
            None => Err(ScoreError::UnknownPolicy {
                given: name.chars().take(64).collect(),
                known: self.names.join(", "),
            }),
        }
    }

    /// The policies scored, primary first: `{id}-v{version}`.
    pub fn policy_names(&self) -> &[String] {
        &self.names
    }

    /// The authority view in force from here on: the engines score only
    /// the orchestrators it lists. Called where the view is recorded in the
    /// log (node) or read from it (warm-up, replay), so both see the same
    /// view at the same position.
    pub fn set_authority(&self, view: &AuthorityView) {
        for engine in &self.engines {
            write_lock(engine).set_authority(view);
        }
    }

    /// Feeds an envelope the pipeline accepted.
    pub fn ingest_verified(&self, verified: &Verified) -> IngestReport {
        let observer = Observer::from(verified.certificate());
        self.ingest(&observer, verified.id().timestamp, verified.batch())
    }

    /// Feeds one verified batch, whose envelope is stamped `envelope_ts_ms`,
    /// to every policy; what the primary did with it.
    pub fn ingest(
        &self,
        observer: &Observer,
        envelope_ts_ms: u64,
        batch: &DecodedBatch,
    ) -> IngestReport {
        let (primary, others) = self.engines.split_at(1);
        for engine in others {
            write_lock(engine).ingest(observer, envelope_ts_ms, batch.events());
        }
        write_lock(&primary[0]).ingest(observer, envelope_ts_ms, batch.events())
    }

    /// Seals what the clock at `now_ms` allows, under every policy. `None`
    /// when that seals no new minute of the primary (nothing changed,
    /// nothing to record); otherwise the primary's newly sealed buckets
    /// (possibly none), and the caller records the seal.
    pub fn seal(&self, now_ms: u64) -> Option<Vec<SealedBucket>> {
        let mut primary = write_lock(&self.engines[0]);
        let grace = primary.policy().ingest.seal_grace_ms;
        let to = now_ms.saturating_sub(grace) / MINUTE_MS * MINUTE_MS;
        if to <= self.sealed_end_ms.load(Ordering::Relaxed) {
            return None;
        }
        let sealed = primary.seal(now_ms);
        for engine in &self.engines[1..] {
            write_lock(engine).seal(now_ms);
        }
        self.sealed_end_ms.store(to, Ordering::Relaxed);
        let book = Arc::new(self.book().clone());
        *self.agreement.write().unwrap_or_else(|p| p.into_inner()) = book;
        Some(sealed)
    }

    /// End of the sealed minutes, ms.
    pub fn sealed_end_ms(&self) -> u64 {
        self.sealed_end_ms.load(Ordering::Relaxed)
    }

    /// The checkpoint book (own and peers' checkpoints, as logged so far).
    pub fn checkpoints(&self) -> MutexGuard<'_, CheckpointBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn book(&self) -> MutexGuard<'_, CheckpointBook> {
        self.checkpoints()
    }

    /// Agreement over minutes `[from, to)` as of the last seal (what answers carry).
    pub fn agreement(&self, from: u64, to: u64) -> Agreement {
        self.agreement.read().unwrap_or_else(|p| p.into_inner()).agreement(from, to)
    }

    /// The engines' states and the checkpoint book, for the snapshot file.
    pub fn snapshot(&self) -> Vec<u8> {
        let engines =
            self.engines.iter().map(|e| ciborium::Value::Bytes(read_lock(e).snapshot())).collect();
        let book = self.book().to_records();
        let value = ciborium::Value::Array(vec![
            ciborium::Value::Array(engines),
            ciborium::Value::Array(
                book.into_iter()
                    .map(|(own, bytes)| {
                        ciborium::Value::Array(vec![
                            ciborium::Value::Bool(own),
                            ciborium::Value::Bytes(bytes),
                        ])
                    })
                    .collect(),
            ),
        ]);
        let mut out = Vec::new();
        // Writing plain values into a Vec cannot fail.
        if let Err(e) = ciborium::into_writer(&value, &mut out) {
            unreachable!("serializing the scores snapshot: {e}");
        }
        out
    }
}

impl Collector for Scores {
    /// The `vouch_sla_*` families.
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let stats = self.read().stats();
        let enc = &mut enc;
        for (name, help, value) in [
            ("vouch_sla_sealed_end_ms", "End of the newest sealed minute.", stats.sealed_end_ms),
            ("vouch_sla_open_sessions", "Open gateway sessions.", stats.open_sessions),
            ("vouch_sla_open_attempts", "Attempts in open sessions.", stats.open_attempts),
            ("vouch_sla_series", "(orchestrator, model, region, origin) keys.", stats.series_keys),
            (
                "vouch_sla_gateway_series",
                "((orchestrator, model, region, origin), gateway) keys.",
                stats.gateway_keys,
            ),
            (
                "vouch_sla_listed_orchestrators",
                "Orchestrators of the authority view in force (only they are scored).",
                stats.listed_orchestrators,
            ),
            ("vouch_sla_minute_buckets", "Minute buckets in memory.", stats.minute_buckets),
            ("vouch_sla_hour_buckets", "Hour buckets in memory.", stats.hour_buckets),
            ("vouch_sla_state_bytes", "Approximate bytes of SLA state.", stats.approx_state_bytes),
        ] {
            gauge(enc, name, help, value)?;
        }
        let (answers, bytes, evicted) = self.answer_cache_stats();
        gauge(enc, "vouch_sla_cached_answers", "Serialized API answers held.", answers as u64)?;
        gauge(
            enc,
            "vouch_sla_cached_answer_bytes",
            "Bytes of serialized API answers held.",
            bytes as u64,
        )?;
        counter(
            enc,
            "vouch_sla_answer_cache_full_total",
            "Times the answer cache was full and emptied.",
            evicted,
        )?;
        let principal = |p: &vouch_schema::Address| [("principal", p.to_string())];
        gauge_family(
            enc,
            "vouch_sla_principal_sessions",
            "Open gateway sessions per gateway principal.",
            stats.principals.iter().map(|(p, (sessions, _))| (principal(p), *sessions)),
        )?;
        gauge_family(
            enc,
            "vouch_sla_principal_state_bytes",
            "Approximate open-session bytes per gateway principal.",
            stats.principals.iter().map(|(p, (_, bytes))| (principal(p), *bytes)),
        )?;
        counter_family(
            enc,
            "vouch_sla_events_total",
            "SLA engine event counters by name.",
            stats.counters.iter().map(|(name, value)| ([("counter", name.as_str())], *value)),
        )?;
        gauge_family(
            enc,
            "vouch_sla_policy_state_bytes",
            "Approximate bytes of SLA state per policy scored (the figures above are the primary's).",
            self.engines.iter().zip(&self.names).map(|(e, name)| {
                ([("policy", name.clone())], read_lock(e).stats().approx_state_bytes)
            }),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_strangers() {
        for r in [PolicyFiles::default().record(), ScoreRecord::SlaSeal { now_ms: 42 }] {
            assert_eq!(ScoreRecord::decode(&r.encode()).unwrap(), r);
        }
        assert!(ScoreRecord::decode(br#"{"kind":"other"}"#).is_err());
        assert!(ScoreRecord::decode(b"\xff").is_err());
    }

    #[test]
    fn answers_are_kept_until_the_next_seal() {
        use crate::api::SlaSource;
        let (scores, _) = Scores::open(&PolicyFiles::default(), None).unwrap();
        let params = crate::api::Params::new();
        let end = |b: &[u8]| {
            serde_json::from_slice::<serde_json::Value>(b).unwrap()["window"]["end_ms"].clone()
        };
        scores.seal(100 * 60_000);
        let first = scores.orchestrators(&params).unwrap();
        assert_eq!(scores.orchestrators(&params).unwrap(), first, "served from the cache");
        assert_eq!(scores.answer_cache_stats().0, 1);
        assert!(scores.answer_cache_stats().1 > first.len(), "bytes of key and body");
        scores.seal(200 * 60_000);
        let second = scores.orchestrators(&params).unwrap();
        assert_ne!(end(&second), end(&first), "recomputed after the seal: {:?}", end(&second));
        let bad = crate::api::Params::from([("window".to_owned(), "2h".to_owned())]);
        assert!(scores.orchestrators(&bad).is_err());
        assert_eq!(scores.answer_cache_stats().0, 1, "errors are not cached");
    }

    #[test]
    fn policies_are_named_once_and_bounded() {
        let naap = Policy::builtin_text("naap-quality-benchmark-v1").unwrap().to_owned();
        let twice = PolicyFiles { also: vec![naap.clone(), naap], ..PolicyFiles::default() };
        assert_eq!(
            twice.parse().unwrap_err().to_string(),
            "SLA policy naap-quality-benchmark-v1 is named twice"
        );
        let v1 = vouch_sla::DEFAULT_POLICY_TOML.to_owned();
        let many = PolicyFiles { also: vec![v1; 4], ..PolicyFiles::default() };
        assert_eq!(
            many.parse().unwrap_err().to_string(),
            "5 SLA policies configured; a node scores at most 4"
        );
        let (policies, _) = PolicyFiles::default().parse().unwrap();
        let names: Vec<String> = policies.iter().map(Policy::name).collect();
        assert_eq!(names, ["sla-policy-v2", "naap-quality-benchmark-v1"]);
    }

    #[test]
    fn a_snapshot_restores_and_a_foreign_one_is_dropped() {
        let files = PolicyFiles::default();
        let (scores, restored) = Scores::open(&files, None).unwrap();
        assert!(!restored);
        assert!(scores.seal(10 * 60_000).is_some(), "the first seal advances");
        assert!(scores.seal(10 * 60_000).is_none(), "the same clock seals nothing new");
        let bytes = scores.snapshot();
        let (again, restored) = Scores::open(&files, Some(&bytes)).unwrap();
        assert!(restored);
        assert_eq!(again.snapshot(), bytes);
        let (_, restored) = Scores::open(&files, Some(b"garbage")).unwrap();
        assert!(!restored);
    }
}
