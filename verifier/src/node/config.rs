//! The verifier node's configuration (`verifier.toml`; see `examples/verifier.toml`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use vouch_net::{ConnectionCaps, Partitions};
use vouch_schema::Address;

use crate::http_server::HttpLimits;
use crate::validate::ValidationConfig;

use super::{ConfigError, NodeError};

/// Everything a verifier node needs. Every field has a default that works
/// except the authority source (a snapshot file, or `rpc` + `controller`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Where the log lives (default `vouch-data`).
    pub data_dir: Option<PathBuf>,
    /// Delete the derived state and rebuild it from the log at start (set by
    /// `vouch node --rebuild-state`; not a file setting).
    #[serde(skip)]
    pub rebuild_state: bool,
    /// Gossip networking.
    pub p2p: P2pConfig,
    /// The HTTP API.
    pub http: HttpConfig,
    /// Who may publish.
    pub authority: AuthorityConfig,
    /// The queue in front of the pipeline and group commit.
    pub ingest: IngestConfig,
    /// The segment log.
    pub log: LogSettings,
    /// Bounds of the validation pipeline's guards.
    pub validation: ValidationConfig,
    /// Followers of the log run beside ingestion (`[sinks.clickhouse]`);
    /// none by default. They read only committed records and never slow
    /// ingestion (see [`crate::sink`]).
    pub sinks: crate::sink::SinksConfig,
    /// The SLA engine: policy and model registry files, checkpointing.
    pub sla: SlaSettings,
    /// The HTTP API's access rules (JWT, rate limits, CORS, embedding).
    pub api: crate::api::ApiConfig,
    /// Who signs this verifier's checkpoints (`[checkpoint]`).
    pub checkpoint: crate::converge::CheckpointConfig,
    /// How this verifier reconciles accepted envelopes with its peers (`[sync]`).
    pub sync: vouch_net::SyncConfig,
    /// Test-only misbehaviour (feature `fault-injection`).
    #[cfg(feature = "fault-injection")]
    pub faults: Faults,
}

/// `[faults]`: how a verifier built for tests misbehaves (feature
/// `fault-injection`; a release build refuses the table).
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Accepts this principal's envelopes (gossip forwards them) but leaves
    /// them out of the log and the scores: a verifier hiding a principal.
    pub drop_principal: Option<Address>,
}

/// `[sla]`: which policy and model registry score, and how often the
/// engine's state is checkpointed.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlaSettings {
    /// The primary SLA policy: a built-in policy's name (`sla-policy-v2`,
    /// `naap-quality-benchmark-v1`, `sla-policy-v1`) or a TOML file
    /// (default: `sla-policy-v2`). Its buckets are what checkpoints sign and
    /// its answers are served when a query names no policy.
    pub policy: Option<PathBuf>,
    /// Further policies scored side by side, by name or file, selected by
    /// `?policy=NAME` (default: `["naap-quality-benchmark-v1"]`; `[]` for none).
    pub also: Option<Vec<PathBuf>>,
    /// Model registry TOML (default: the embedded `schemas/policy/models-v1.toml`).
    pub registry: Option<PathBuf>,
    /// Seconds between snapshots of the engine beside the state; a restart
    /// re-reads the log after the last one. (Called `checkpoint_interval_secs`
    /// before signed checkpoints existed; that name is still read.)
    #[serde(alias = "checkpoint_interval_secs")]
    pub snapshot_interval_secs: u64,
    /// `[sla.limits]`: the engine's bounds, per principal and in total
    /// (recorded in the log with the policy, so a replay applies the same).
    pub limits: vouch_sla::Limits,
}

impl Default for SlaSettings {
    fn default() -> Self {
        SlaSettings {
            policy: None,
            also: None,
            registry: None,
            snapshot_interval_secs: 60,
            limits: vouch_sla::Limits::default(),
        }
    }
}

impl SlaSettings {
    /// The policy and registry texts in force.
    pub fn files(&self) -> Result<crate::scores::PolicyFiles, NodeError> {
        let mut files = crate::scores::PolicyFiles { limits: self.limits, ..Default::default() };
        let read = |p: &Path| crate::config_file::read_text(p).map_err(ConfigError::File);
        let policy = |p: &Path| match p.to_str().and_then(vouch_sla::Policy::builtin_text) {
            Some(text) => Ok(text.to_owned()),
            None => read(p),
        };
        if let Some(p) = &self.policy {
            files.policy_toml = policy(p)?;
        }
        if let Some(also) = &self.also {
            files.also = also.iter().map(|p| policy(p)).collect::<Result<_, _>>()?;
        }
        if let Some(p) = &self.registry {
            files.registry_toml = read(p)?;
        }
        files.parse().map_err(ConfigError::from)?;
        Ok(files)
    }
}

/// Gossip networking.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct P2pConfig {
    /// Multiaddrs to listen on; port 0 picks a free port.
    pub listen: Vec<String>,
    /// Peers to dial at start (multiaddrs ending in `/p2p/<peer id>`).
    pub bootstrap: Vec<String>,
    /// Telemetry partitions to follow: ranges and numbers, e.g. `"0-9,42"`.
    pub partitions: String,
    /// Caps on gossip connections (`[p2p.limits]`); their sum is kept free
    /// of HTTP connections in the descriptor budget.
    pub limits: ConnectionCaps,
}

impl P2pConfig {
    /// The partitions to follow, parsed from [`P2pConfig::partitions`].
    pub fn parse_partitions(&self) -> Result<Partitions, NodeError> {
        self.partitions.parse().map_err(|source| {
            ConfigError::Partitions { given: self.partitions.clone(), source }.into()
        })
    }
}

impl Default for P2pConfig {
    fn default() -> Self {
        P2pConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".to_owned()],
            bootstrap: Vec::new(),
            partitions: "0-99".to_owned(),
            limits: ConnectionCaps::default(),
        }
    }
}

/// The HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to serve on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Connection caps, timeouts and request size limits (`[http.limits]`).
    pub limits: HttpLimits,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: SocketAddr::from(([127, 0, 0, 1], 0)), limits: HttpLimits::default() }
    }
}

/// Where the authority view comes from: a snapshot file, or the chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthorityConfig {
    /// An authority snapshot file (JSON). Takes precedence over `rpc`.
    pub snapshot: Option<PathBuf>,
    /// An Ethereum JSON-RPC endpoint to read Livepeer's active set from.
    pub rpc: Option<String>,
    /// Livepeer's Controller contract (required with `rpc`).
    pub controller: Option<Address>,
    /// Seconds between background refreshes of the on-chain view.
    pub refresh_interval_secs: u64,
    /// Deadline of one on-chain fetch, seconds.
    pub rpc_timeout_secs: u64,
    /// Gateway allowlist merged into every on-chain view.
    pub gateways: Vec<Address>,
}

impl Default for AuthorityConfig {
    fn default() -> Self {
        AuthorityConfig {
            snapshot: None,
            rpc: None,
            controller: None,
            refresh_interval_secs: 300,
            rpc_timeout_secs: 10,
            gateways: Vec::new(),
        }
    }
}

/// The bounded queue between gossip and the pipeline, and group commit.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Messages waiting for validation; when full the oldest is shed
    /// (reported Ignore to gossip and counted in `vouch_ingest_shed_total`).
    pub queue_capacity: usize,
    /// Most bytes of messages waiting for validation; past it the oldest are
    /// shed the same way. Without it a flood of large envelopes (64 KiB
    /// each) could hold `queue_capacity` × 64 KiB (512 MiB).
    pub queue_bytes: usize,
    /// Batches of envelopes fetched by sync waiting for validation (each at
    /// most a sync response, 1 MiB); when full the oldest is shed (counted
    /// in `vouch_sync_batches_shed_total`; its ids are fetched again later).
    pub sync_queue_batches: usize,
    /// A commit happens once this many records are appended…
    pub commit_max_records: usize,
    /// …or once the group's messages hold this many bytes (a group takes at
    /// least one message)…: a group of large envelopes (tens of KiB each)
    /// holds less memory while it is validated and synced, and the fsync
    /// that the next group's scoring waits for is shorter.
    pub commit_max_bytes: usize,
    /// …or this many ms after the first uncommitted one, whichever is first.
    pub commit_interval_ms: u64,
    /// How often derived state (redb) catches up with the log, ms. A crash
    /// loses nothing: a restart re-reads the log past the last state write.
    pub state_interval_ms: u64,
    /// Threads, the worker's own included, that hash a group's gossip
    /// messages (envelope id, signing hash) before the group is validated in
    /// order; 0 means one per core. The rest of validation stays on the
    /// worker: its guards are sequential.
    pub hash_threads: usize,
}

/// The most a group holds: records, and bytes of messages (but always at
/// least one message, however large).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBound {
    /// Messages at most.
    pub records: usize,
    /// Bytes of messages at most, unless the first alone is larger.
    pub bytes: usize,
}

impl GroupBound {
    /// How many of the first messages, of these lengths, fit.
    pub fn fit(self, lens: impl IntoIterator<Item = usize>) -> usize {
        let (mut n, mut bytes) = (0, 0usize);
        for len in lens {
            bytes = bytes.saturating_add(len);
            if n == self.records || (n > 0 && bytes > self.bytes) {
                break;
            }
            n += 1;
        }
        n
    }
}

impl IngestConfig {
    /// The most a commit group holds (each bound at least 1).
    pub fn group_bound(&self) -> GroupBound {
        GroupBound { records: self.commit_max_records.max(1), bytes: self.commit_max_bytes.max(1) }
    }

    /// [`IngestConfig::hash_threads`], with 0 resolved to the cores available.
    pub fn hash_threads(&self) -> usize {
        match self.hash_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            queue_capacity: 8192,
            queue_bytes: 64 << 20,
            sync_queue_batches: 16,
            commit_max_records: 512,
            commit_max_bytes: 4 << 20,
            commit_interval_ms: 5,
            state_interval_ms: 1000,
            hash_threads: 0,
        }
    }
}

/// The segment log.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// Size at which a new segment file is started, bytes.
    pub segment_bytes: u64,
    /// Committed bytes left in the page cache; older frames are dropped
    /// from it after each commit ([`crate::store::LogConfig::cached_tail_bytes`]).
    pub cached_tail_bytes: u64,
    /// Raw segments last written more than this many days ago are removed
    /// (whole segments, the chain stays anchored); 0 keeps everything.
    pub retention_days: u64,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            segment_bytes: crate::store::log::DEFAULT_SEGMENT_BYTES,
            cached_tail_bytes: crate::store::log::DEFAULT_CACHED_TAIL_BYTES,
            retention_days: 30,
        }
    }
}

impl NodeConfig {
    /// Reads a TOML file; relative paths in it are taken relative to its directory.
    pub fn from_file(path: &Path) -> Result<NodeConfig, NodeError> {
        let mut config: NodeConfig =
            crate::config_file::read_toml(path).map_err(ConfigError::File)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rebase = |p: &mut PathBuf| {
            let builtin = p.to_str().and_then(vouch_sla::Policy::builtin_text).is_some();
            if p.is_relative() && !builtin {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = config.data_dir.as_mut() {
            rebase(p);
        }
        if let Some(p) = config.authority.snapshot.as_mut() {
            rebase(p);
        }
        let files = [
            config.sla.policy.as_mut(),
            config.sla.registry.as_mut(),
            config.checkpoint.key.as_mut(),
            config.checkpoint.certificate.as_mut(),
        ];
        for p in files.into_iter().flatten() {
            rebase(p);
        }
        for p in config.sla.also.iter_mut().flatten() {
            rebase(p);
        }
        Ok(config)
    }

    /// The data directory in force.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from("vouch-data"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/verifier.toml");
        let config = NodeConfig::from_file(&path).unwrap();
        assert!(config.authority.snapshot.unwrap().ends_with("authority.json"));
        assert_eq!(config.p2p.parse_partitions().unwrap().len(), 100);
    }

    #[test]
    fn example_and_readme_limits_are_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/verifier.toml");
        let example = NodeConfig::from_file(&path).unwrap();
        // The `[http]` block of README.md ("HTTP API and dashboard").
        let readme = include_str!("../../../README.md");
        let start = readme.find("```toml\n[http]\n").unwrap() + "```toml\n".len();
        let block = &readme[start..][..readme[start..].find("```").unwrap()];
        let documented: NodeConfig = toml::from_str(block).unwrap();
        for config in [example, documented] {
            assert_eq!(config.http.limits, HttpLimits::default());
            assert_eq!(config.p2p.limits, ConnectionCaps::default());
        }
    }

    #[test]
    fn partitions_are_a_config_error() {
        let p2p = |partitions: &str| P2pConfig {
            partitions: partitions.to_owned(),
            ..P2pConfig::default()
        };
        assert_eq!(
            p2p("0-2, 7").parse_partitions().unwrap().iter().collect::<Vec<_>>(),
            [0, 1, 2, 7]
        );
        for bad in ["100", "3-1", ""] {
            let err = p2p(bad).parse_partitions().unwrap_err();
            assert!(
                matches!(&err, NodeError::Config(m @ ConfigError::Partitions { .. })
                    if m.to_string().starts_with(&format!("partitions {bad:?}: "))),
                "{err}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<NodeConfig>("data_dirr = \"x\"").is_err());
        assert!(toml::from_str::<NodeConfig>("[ingest]\nqueue_capacity = 4").is_ok());
    }
}
