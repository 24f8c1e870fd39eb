//! The publisher's configuration: a TOML file (see `examples/publisher.toml`).
//!
//! Only `key_file` and `certificate` are required; everything else has a
//! default that works for a production orchestrator or gateway:
//!
//! | key | default |
//! |---|---|
//! | `key_file` | required: the delegate's hex key file or Ethereum keystore |
//! | `key_password_file` | none (needed only for a keystore) |
//! | `certificate` | required: the delegation certificate (CBOR, or wallet JSON) |
//! | `stream_id` | `0x<principal>/livepeer/telemetry` |
//! | `partition` | `partition_for_key(100, <certificate region>)`; 0 if the region is empty |
//! | `[batch] max_events` | 64 |
//! | `[batch] linger_ms` | 200 |
//! | `[batch] max_bytes` | [`DEFAULT_MAX_BATCH_BYTES`] (the envelope limit less [`ENVELOPE_OVERHEAD`]) |
//! | `[queue] capacity` | 8192 events |
//! | `[queue] drop_policy` | `"drop_newest"` (see [`DropPolicy`]) |
//! | `[redaction]` | strict (see [`crate::redact`]) |
//! | `[transport] kind` | `"gossip"` |
//! | `[transport] path` | none (required when `kind = "file"`) |
//! | `[transport] listen` | `[]`: dial out only |
//! | `[transport] bootstrap` | `[]` |
//!
//! Relative paths in a file read with [`PublisherConfig::from_file`] are
//! taken relative to that file's directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vouch_schema::SharedError;
use vouch_schema::limits::{MAX_BATCH_EVENTS, MAX_ENVELOPE_BYTES, MAX_PARTITIONS};

use crate::redact::RedactionConfig;

/// Bytes an envelope adds around its content, at most: the map, numbering,
/// publisher, chain id, `prev`, signature and a stream id of up to 255 bytes
/// come to about 425 bytes; this rounds up.
pub const ENVELOPE_OVERHEAD: usize = 512;

/// The default and largest `[batch] max_bytes`: the largest encoded batch
/// (envelope content) that always fits in a [`MAX_ENVELOPE_BYTES`] envelope.
pub const DEFAULT_MAX_BATCH_BYTES: usize = MAX_ENVELOPE_BYTES - ENVELOPE_OVERHEAD;

/// The smallest `[batch] max_bytes` accepted.
pub const MIN_MAX_BATCH_BYTES: usize = 1024;

/// The largest `[queue] capacity` accepted.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 22;

/// The longest `[batch] linger_ms` accepted (one minute).
pub const MAX_LINGER_MS: u64 = 60_000;

/// Largest configuration file read, in bytes.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The whole publisher configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherConfig {
    /// The delegate's signing key: a hex key file or an Ethereum JSON keystore.
    pub key_file: PathBuf,
    /// A file holding the keystore password (first line); only for a keystore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_password_file: Option<PathBuf>,
    /// The delegation certificate that authorizes the key (CBOR as written by
    /// `vouch delegate issue`, or signed wallet JSON).
    pub certificate: PathBuf,
    /// The Streamr stream id; default `0x<principal>/livepeer/telemetry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    /// The partition (0–99); default `partition_for_key(100, region)` of the
    /// certificate's region, 0 if the region is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// When a batch is sealed and signed.
    #[serde(default)]
    pub batch: BatchConfig,
    /// The bounded queue between callers and the worker.
    #[serde(default)]
    pub queue: QueueConfig,
    /// What is removed or pseudonymized before signing.
    #[serde(default)]
    pub redaction: RedactionConfig,
    /// Where signed envelopes go.
    #[serde(default)]
    pub transport: TransportConfig,
}

/// `[batch]`: a batch is sealed at `max_events`, after `linger_ms`, or before
/// it would exceed `max_bytes`, whichever comes first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most events in one envelope (1 to 1,024; default 64).
    pub max_events: usize,
    /// Longest time the first event of a batch waits for company, in ms
    /// (0 to 60,000; default 200).
    pub linger_ms: u64,
    /// Largest encoded batch (the envelope's content, certificate included),
    /// in bytes ([`MIN_MAX_BATCH_BYTES`] to [`DEFAULT_MAX_BATCH_BYTES`], the default).
    pub max_bytes: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig { max_events: 64, linger_ms: 200, max_bytes: DEFAULT_MAX_BATCH_BYTES }
    }
}

/// `[queue]`: the bounded queue that `publish` writes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Most events waiting for the worker (1 to [`MAX_QUEUE_CAPACITY`]; default 8,192).
    pub capacity: usize,
    /// Which event is dropped when the queue is full.
    pub drop_policy: DropPolicy,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { capacity: 8192, drop_policy: DropPolicy::default() }
    }
}

/// Which event is lost when `publish` finds the queue full. Either way the
/// caller never waits and the loss is counted in `dropped_queue_full`.
///
/// The default is [`DropPolicy::DropNewest`]: the caller's cost stays the same
/// whether or not the queue is full (nothing is freed on its thread), the
/// caller learns from `publish`'s `QueueFull` error exactly which event was
/// lost, and what is already queued stays a contiguous run of events, so a
/// stream's opening milestones (`gateway_receive_stream_request`, …) queued
/// before an overload are not evicted by the flood that follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropPolicy {
    /// Refuse the new event (`publish` returns `PublishError::QueueFull`).
    #[default]
    DropNewest,
    /// Evict the oldest queued event and accept the new one.
    DropOldest,
}

/// Which transport carries the envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// libp2p gossipsub to the configured bootstrap verifiers (DESIGN.md §5).
    #[default]
    Gossip,
    /// An append-only file of frames ([`crate::transport::file`]).
    File,
}

/// `[transport]`: where envelopes go. Multiaddresses are kept as strings; the
/// gossip transport parses them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportConfig {
    /// `"gossip"` (default) or `"file"`.
    pub kind: TransportKind,
    /// The output file, for `kind = "file"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Multiaddresses to listen on (gossip); empty: dial out only.
    pub listen: Vec<String>,
    /// Bootstrap verifiers, e.g. `/ip4/127.0.0.1/tcp/9000/p2p/12D3KooW…` (gossip).
    pub bootstrap: Vec<String>,
}

/// Why a small file of the publisher (configuration, certificate,
/// password, pseudonym key) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileReadError {
    /// Larger than such a file may be.
    #[error("{len} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Its length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The operating system's error.
    #[error(transparent)]
    Io(SharedError<std::io::Error>),
}

/// Why a configuration cannot be used. Messages are stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        reason: FileReadError,
    },
    /// Not TOML, or not the expected keys and types. The message is the
    /// parser's without the quoted source line.
    #[error("config syntax: {}", .0.message())]
    Parse(#[source] toml::de::Error),
    /// A value is out of range or inconsistent with others.
    #[error("config value {field}: {reason}")]
    Invalid {
        /// The offending key, e.g. `batch.max_events`.
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// The extra redaction rules are unusable.
    #[error("config value redaction: {0}")]
    Redaction(#[source] crate::redact::RedactionRuleError),
}

impl PublisherConfig {
    /// A configuration with every default, for the given key and certificate.
    pub fn new(key_file: impl Into<PathBuf>, certificate: impl Into<PathBuf>) -> Self {
        PublisherConfig {
            key_file: key_file.into(),
            key_password_file: None,
            certificate: certificate.into(),
            stream_id: None,
            partition: None,
            batch: BatchConfig::default(),
            queue: QueueConfig::default(),
            redaction: RedactionConfig::default(),
            transport: TransportConfig::default(),
        }
    }

    /// Parses and validates TOML. Relative paths stay relative to the
    /// process's working directory.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config: PublisherConfig = toml::from_str(text).map_err(ConfigError::Parse)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file; relative paths in it are
    /// resolved against the file's directory.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let io = |e: std::io::Error| ConfigError::Io {
            path: path.to_owned(),
            reason: FileReadError::Io(e.into()),
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_CONFIG_BYTES {
            return Err(ConfigError::Io {
                path: path.to_owned(),
                reason: FileReadError::TooLarge { len, limit: MAX_CONFIG_BYTES },
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let mut config = PublisherConfig::from_toml_str(&text)?;
        if let Some(dir) = path.parent() {
            config.resolve_relative_to(dir);
        }
        Ok(config)
    }

    /// Makes every relative path absolute against `dir`.
    pub fn resolve_relative_to(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        fix(&mut self.key_file);
        fix(&mut self.certificate);
        if let Some(p) = &mut self.key_password_file {
            fix(p);
        }
        if let Some(p) = &mut self.transport.path {
            fix(p);
        }
        if let Some(p) = &mut self.redaction.pseudonym_key_file {
            fix(p);
        }
    }

    /// Checks ranges and consistency (done by the constructors; call it
    /// again after changing a configuration by hand).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: String| Err(ConfigError::Invalid { field, reason });
        if self.key_file.as_os_str().is_empty() {
            return invalid("key_file", "must not be empty".into());
        }
        if self.certificate.as_os_str().is_empty() {
            return invalid("certificate", "must not be empty".into());
        }
        if let Some(id) = &self.stream_id
            && let Err(e) = vouch_schema::envelope::check_stream_id(id)
        {
            return invalid("stream_id", e.to_string());
        }
        if let Some(p) = self.partition
            && p >= MAX_PARTITIONS
        {
            return invalid("partition", format!("{p} is not in 0..{MAX_PARTITIONS}"));
        }
        let b = &self.batch;
        if b.max_events == 0 || b.max_events > MAX_BATCH_EVENTS {
            return invalid(
                "batch.max_events",
                format!("{} is not in 1..={MAX_BATCH_EVENTS}", b.max_events),
            );
        }
        if b.linger_ms > MAX_LINGER_MS {
            return invalid("batch.linger_ms", format!("{} is over {MAX_LINGER_MS}", b.linger_ms));
        }
        if b.max_bytes < MIN_MAX_BATCH_BYTES || b.max_bytes > DEFAULT_MAX_BATCH_BYTES {
            return invalid(
                "batch.max_bytes",
                format!(
                    "{} is not in {MIN_MAX_BATCH_BYTES}..={DEFAULT_MAX_BATCH_BYTES}",
                    b.max_bytes
                ),
            );
        }
        let q = &self.queue;
        if q.capacity == 0 || q.capacity > MAX_QUEUE_CAPACITY {
            return invalid(
                "queue.capacity",
                format!("{} is not in 1..={MAX_QUEUE_CAPACITY}", q.capacity),
            );
        }
        if let Err(e) = self.redaction.validate() {
            return Err(ConfigError::Redaction(e));
        }
        if self.transport.kind == TransportKind::File && self.transport.path.is_none() {
            return invalid("transport.path", "required when transport.kind = \"file\"".into());
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = PublisherConfig::from_toml_str("key_file = \"k\"\ncertificate = \"c\"\n").unwrap();
        assert_eq!(c, PublisherConfig::new("k", "c"));
        assert_eq!(c.batch.max_events, 64);
        assert_eq!(c.queue.drop_policy, DropPolicy::DropNewest);
        assert_eq!(c.transport.kind, TransportKind::Gossip);
    }

    #[test]
    fn the_documented_example_is_the_defaults() {
        let text = include_str!("../../examples/publisher.toml");
        let c = PublisherConfig::from_toml_str(text).unwrap();
        assert_eq!(c, PublisherConfig::new("delegate.key", "delegate.cert"));
    }

    #[test]
    fn full_config_parses() {
        let text = r#"
            key_file = "delegate.key"
            certificate = "delegate.cert"
            stream_id = "0x1111111111111111111111111111111111111111/livepeer/telemetry"
            partition = 7
            [batch]
            max_events = 16
            linger_ms = 50
            max_bytes = 32768
            [queue]
            capacity = 100
            drop_policy = "drop_oldest"
            [transport]
            kind = "file"
            path = "out.frames"
            bootstrap = ["/ip4/127.0.0.1/tcp/9000/p2p/12D3KooWabc"]
        "#;
        let c = PublisherConfig::from_toml_str(text).unwrap();
        assert_eq!(c.partition, Some(7));
        assert_eq!(c.queue.drop_policy, DropPolicy::DropOldest);
        assert_eq!(c.transport.kind, TransportKind::File);
        assert_eq!(c.transport.bootstrap.len(), 1);
    }

    #[test]
    fn bad_values_are_refused() {
        let base = "key_file = \"k\"\ncertificate = \"c\"\n";
        for (extra, field) in [
            ("partition = 100\n", "partition"),
            ("stream_id = \"nope\"\n", "stream_id"),
            ("[batch]\nmax_events = 0\n", "batch.max_events"),
            ("[batch]\nmax_events = 1025\n", "batch.max_events"),
            ("[batch]\nmax_bytes = 70000\n", "batch.max_bytes"),
            ("[queue]\ncapacity = 0\n", "queue.capacity"),
            ("[transport]\nkind = \"file\"\n", "transport.path"),
        ] {
            match PublisherConfig::from_toml_str(&format!("{base}{extra}")) {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field, "{extra}"),
                other => panic!("{extra}: {other:?}"),
            }
        }
        for bad in [
            "certificate = \"c\"\n",
            "key_file = \"k\"\ncertificate = \"c\"\ntypo = 1\n",
            "key_file = \"k\"\ncertificate = \"c\"\n[queue]\ndrop_policy = \"random\"\n",
            "key_file = \"k\"\ncertificate = \"c\"\n[transport]\nkind = \"carrier-pigeon\"\n",
        ] {
            assert!(matches!(PublisherConfig::from_toml_str(bad), Err(ConfigError::Parse(_))));
        }
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "key_file = \"k\"\ncertificate = \"/abs/c\"\n").unwrap();
        let c = PublisherConfig::from_file(&path).unwrap();
        assert_eq!(c.key_file, dir.path().join("k"));
        assert_eq!(c.certificate, PathBuf::from("/abs/c"));
    }
}
