//! `[bridge.streamr]`: the Streamr bridge's configuration (TOML).
//!
//! ```toml
//! [bridge.streamr]
//! log = "vouch-data/log"                # outbound: the co-located verifier's log
//! streams = ["0x…/livepeer/telemetry"]  # inbound: stream ids
//! bootstrap = ["/ip4/…/tcp/…/p2p/…"]    # inbound: verifiers to gossip to
//! node_config = "verifier.toml"         # authority, validation and log from the node's file
//! [bridge.streamr.network]              # the Streamr network, through the sidecar (default)
//! client_file = "streamr-client.json"   # StreamrClient config (or an inline `client` table)
//! partitions = [0, 1, 2]                # inbound: stream partitions (default all 100)
//! [bridge.streamr.authority]            # or an authority of its own
//! snapshot = "authority.json"
//! ```
//!
//! With `mqtt = "mqtt://HOST[:PORT]"` the bridge feeds a Streamr node's MQTT
//! plugin instead (the convenience feed of [`super::mqtt`]; `password` is the
//! node's API key, and `streams` may hold MQTT wildcards).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::http_server::HttpLimits;
use crate::node::NodeConfig;
use crate::node::config::AuthorityConfig;
use crate::validate::ValidationConfig;

use super::{BridgeConfigError, BridgeError};

/// Everything the Streamr bridge needs; every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamrBridgeConfig {
    /// The broker of the MQTT feed: `mqtt://HOST[:PORT]` (port 1883 by
    /// default). Unset (the default), the bridge joins the Streamr network
    /// through its sidecar ([`NetworkConfig`]).
    pub mqtt: Option<String>,
    /// MQTT client id (default `vouch-bridge-<random>`). A Streamr node uses
    /// it as the message chain id of what it re-signs.
    pub client_id: Option<String>,
    /// MQTT user name (sent only with a password).
    pub username: Option<String>,
    /// MQTT password: a Streamr node's plugins take the node's API key here.
    pub password: Option<String>,
    /// Outbound: the verifier log to follow; only envelopes committed there leave.
    pub log: Option<PathBuf>,
    /// Outbound: the file holding the next log index to send (default
    /// `streamr-bridge.cursor` beside the log directory).
    pub cursor: Option<PathBuf>,
    /// Inbound: stream ids to subscribe to (MQTT topic filters on the feed).
    pub streams: Vec<String>,
    /// Inbound: a verifier log whose revocations the inbound pipeline
    /// applies as they are logged (default: `log`, when the bridge follows one).
    pub revocations_log: Option<PathBuf>,
    /// The Streamr network side: the sidecar and its StreamrClient.
    pub network: NetworkConfig,
    /// A `vouch node` configuration file: its authority, validation settings
    /// and log directory are used where this file does not set them.
    pub node_config: Option<PathBuf>,
    /// Inbound: gossip multiaddrs to listen on (default one loopback port).
    pub p2p_listen: Vec<String>,
    /// Inbound: verifiers to dial and gossip accepted envelopes to.
    pub bootstrap: Vec<String>,
    /// Where `/metrics`, `/healthz` and `/v1/bridge/stats` are served.
    pub http_listen: SocketAddr,
    /// Connection caps, timeouts and request size limits of that listener
    /// (`[bridge.streamr.http_limits]`, the node's `[http.limits]` keys).
    pub http_limits: HttpLimits,
    /// Message ids remembered to break loops (oldest evicted first, counted).
    pub seen_capacity: usize,
    /// Log records read and published per batch (the cursor moves per batch,
    /// once the broker acknowledged all of it).
    pub outbound_batch: usize,
    /// How often the log is polled for new records, ms.
    pub poll_interval_ms: u64,
    /// Inbound messages waiting for validation (beyond it the MQTT broker is
    /// back-pressured; Streamr messages are dropped and counted).
    pub inbound_queue: usize,
    /// Who may publish (inbound validation).
    pub authority: AuthorityConfig,
    /// Bounds of the inbound validation pipeline.
    pub validation: ValidationConfig,
}

impl Default for StreamrBridgeConfig {
    fn default() -> Self {
        StreamrBridgeConfig {
            mqtt: None,
            client_id: None,
            username: None,
            password: None,
            log: None,
            cursor: None,
            streams: Vec::new(),
            revocations_log: None,
            network: NetworkConfig::default(),
            node_config: None,
            p2p_listen: Vec::new(),
            bootstrap: Vec::new(),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_limits: HttpLimits::default(),
            seen_capacity: 65_536,
            outbound_batch: 256,
            poll_interval_ms: 10,
            inbound_queue: 1024,
            authority: AuthorityConfig::default(),
            validation: ValidationConfig::default(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileRoot {
    bridge: BridgeSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BridgeSection {
    streamr: StreamrBridgeConfig,
}

impl StreamrBridgeConfig {
    /// Reads the `[bridge.streamr]` section of a TOML file (other sections
    /// are left to their owners); relative paths are taken relative to the file.
    pub fn from_file(path: &Path) -> Result<StreamrBridgeConfig, BridgeError> {
        let root: FileRoot =
            crate::config_file::read_toml(path).map_err(BridgeConfigError::File)?;
        let mut config = root.bridge.streamr;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            config.log.as_mut(),
            config.cursor.as_mut(),
            config.node_config.as_mut(),
            config.authority.snapshot.as_mut(),
            config.network.sidecar.as_mut(),
            config.network.client_file.as_mut(),
            config.revocations_log.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// Fills what is unset from `node_config`, if one is named.
    pub fn resolve(mut self) -> Result<StreamrBridgeConfig, BridgeError> {
        let Some(path) = self.node_config.clone() else { return Ok(self) };
        let node = NodeConfig::from_file(&path).map_err(BridgeConfigError::NodeConfig)?;
        if self.authority.snapshot.is_none() && self.authority.rpc.is_none() {
            self.authority = node.authority.clone();
        }
        if self.validation == ValidationConfig::default() {
            self.validation = node.validation.clone();
        }
        if self.log.is_none() {
            self.log = Some(node.data_dir().join("log"));
        }
        Ok(self)
    }

    /// The cursor file in force, if the bridge follows a log.
    pub fn cursor_path(&self) -> Option<PathBuf> {
        if let Some(c) = &self.cursor {
            return Some(c.clone());
        }
        let log = self.log.as_ref()?;
        let parent = log.parent().unwrap_or(Path::new("."));
        Some(parent.join("streamr-bridge.cursor"))
    }

    /// `(host, port)` of the `mqtt` URL, if the bridge feeds MQTT.
    pub fn broker(&self) -> Result<Option<(String, u16)>, BridgeError> {
        let Some(url) = &self.mqtt else { return Ok(None) };
        let bad = |problem| -> BridgeError {
            BridgeConfigError::MqttUrl { url: url.clone(), problem }.into()
        };
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or_else(|| bad("must start with mqtt:// (TLS is not built in)"))?;
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') || rest.contains('@') {
            return Err(bad("expected mqtt://HOST[:PORT]"));
        }
        match rest.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !host.ends_with(':') => {
                let port = port.parse().map_err(|_| bad("bad port"))?;
                Ok(Some((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port)))
            }
            _ => Ok(Some((rest.to_owned(), 1883))),
        }
    }
}

/// `[bridge.streamr.network]`: the sidecar that joins the Streamr network
/// with Streamr's own SDK, and the StreamrClient it runs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// The Node.js executable (20 or newer).
    pub node: PathBuf,
    /// Node options before the script (e.g. `["--require", "preload.cjs"]`).
    pub node_args: Vec<String>,
    /// The sidecar script (default: `interop/streamr-sidecar/sidecar.mjs`
    /// of the source tree this binary was built from, when it exists).
    pub sidecar: Option<PathBuf>,
    /// The StreamrClient configuration, passed to the SDK unchanged
    /// (environment, entry points, RPCs, WebSocket host and ports).
    pub client: serde_json::Value,
    /// A JSON file holding the StreamrClient configuration, instead of `client`.
    pub client_file: Option<PathBuf>,
    /// Give the sidecar's node a fixed peer descriptor (a free WebSocket port
    /// on `websocketHost`), so the SDK does not look its region up.
    pub fixed_peer: bool,
    /// Inbound: the stream partitions subscribed to on each stream.
    pub partitions: Vec<u32>,
    /// A publish is confirmed once its stream part has this many neighbors.
    pub min_neighbors: u32,
    /// How long the sidecar waits for neighbors before failing a publish, ms.
    pub confirm_timeout_ms: u64,
    /// Publishes waiting toward the sidecar (the log is read no faster beyond).
    pub queue: usize,
    /// How often the sidecar is pinged, ms.
    pub health_interval_ms: u64,
    /// A sidecar silent for this long is killed and restarted, ms.
    pub health_timeout_ms: u64,
    /// How long a starting sidecar may take to join the network, ms.
    pub start_timeout_ms: u64,
    /// First wait before a restart, ms; doubles per failed start.
    pub restart_backoff_ms: u64,
    /// Longest wait before a restart, ms.
    pub restart_backoff_max_ms: u64,
    /// Inbound bytes the sidecar may buffer toward the bridge before it
    /// drops messages (counted).
    pub max_out_bytes: usize,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            node: PathBuf::from("node"),
            node_args: Vec::new(),
            sidecar: None,
            client: serde_json::Value::Object(serde_json::Map::new()),
            client_file: None,
            fixed_peer: false,
            partitions: (0..vouch_schema::limits::MAX_PARTITIONS).collect(),
            min_neighbors: 1,
            confirm_timeout_ms: 10_000,
            queue: 1024,
            health_interval_ms: 2_000,
            health_timeout_ms: 10_000,
            start_timeout_ms: 60_000,
            restart_backoff_ms: 500,
            restart_backoff_max_ms: 30_000,
            max_out_bytes: 8 << 20,
        }
    }
}

impl NetworkConfig {
    /// The sidecar script in force.
    pub fn sidecar_path(&self) -> Result<PathBuf, BridgeError> {
        if let Some(p) = &self.sidecar {
            return Ok(p.clone());
        }
        let built =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/streamr-sidecar/sidecar.mjs");
        if built.is_file() {
            return Ok(built);
        }
        Err(BridgeConfigError::NoSidecar.into())
    }

    /// The StreamrClient configuration in force (`client_file` wins).
    pub fn client_config(&self) -> Result<serde_json::Value, BridgeError> {
        let Some(path) = &self.client_file else { return Ok(self.client.clone()) };
        let text = crate::config_file::read_text(path).map_err(BridgeConfigError::File)?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|source| BridgeConfigError::Json { path: path.clone(), source })?;
        if !value.is_object() {
            return Err(BridgeConfigError::ClientNotAnObject { path: path.clone() }.into());
        }
        Ok(value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let with = |u: &str| StreamrBridgeConfig { mqtt: Some(u.to_owned()), ..Default::default() };
        let broker = |u: &str| with(u).broker().unwrap().unwrap();
        assert_eq!(broker("mqtt://127.0.0.1:1884"), ("127.0.0.1".into(), 1884));
        assert_eq!(broker("mqtt://broker"), ("broker".into(), 1883));
        assert_eq!(broker("tcp://h:1/"), ("h".into(), 1));
        assert_eq!(StreamrBridgeConfig::default().broker().unwrap(), None);
        assert!(with("mqtts://h").broker().is_err());
        assert!(with("mqtt://h:x").broker().is_err());
        assert!(with("mqtt://").broker().is_err());
    }

    #[test]
    fn node_config_fills_the_gaps() {
        let dir = tempfile::TempDir::new().unwrap();
        let node = dir.path().join("verifier.toml");
        std::fs::write(&node, "data_dir = \"d\"\n[authority]\nsnapshot = \"a.json\"\n").unwrap();
        let c = StreamrBridgeConfig { node_config: Some(node), ..Default::default() }
            .resolve()
            .unwrap();
        assert_eq!(c.log.unwrap(), dir.path().join("d/log"));
        assert_eq!(c.authority.snapshot.unwrap(), dir.path().join("a.json"));
        let own = StreamrBridgeConfig {
            node_config: Some(dir.path().join("verifier.toml")),
            log: Some("elsewhere".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(own.log.unwrap(), std::path::PathBuf::from("elsewhere"));
    }

    #[test]
    fn section_parses_and_rebases() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("bridge.toml");
        std::fs::write(
            &path,
            "[node]\nx = 1\n[bridge.streamr]\nlog = \"data/log\"\nstreams = [\"0xab/x\"]\n\
             [bridge.streamr.authority]\nsnapshot = \"a.json\"\n\
             [bridge.streamr.network]\nclient_file = \"c.json\"\npartitions = [3]\n\
             client = { environment = \"dev2\", network = { controlLayer = { websocketHost = \"127.0.0.1\" } } }\n",
        )
        .unwrap();
        let c = StreamrBridgeConfig::from_file(&path).unwrap();
        assert_eq!(c.log.clone().unwrap(), dir.path().join("data/log"));
        assert_eq!(c.cursor_path().unwrap(), dir.path().join("data/streamr-bridge.cursor"));
        assert_eq!(c.authority.snapshot.clone().unwrap(), dir.path().join("a.json"));
        assert_eq!(c.network.partitions, vec![3]);
        assert_eq!(c.network.client["network"]["controlLayer"]["websocketHost"], "127.0.0.1");
        assert_eq!(c.network.client_file.clone().unwrap(), dir.path().join("c.json"));
        assert!(c.network.client_config().is_err(), "client_file missing");
        std::fs::write(dir.path().join("c.json"), "{\"environment\":\"polygon\"}").unwrap();
        assert_eq!(c.network.client_config().unwrap()["environment"], "polygon");
        std::fs::write(&path, "[bridge.streamr]\nlogg = 1\n").unwrap();
        assert!(StreamrBridgeConfig::from_file(&path).is_err());
    }
}
