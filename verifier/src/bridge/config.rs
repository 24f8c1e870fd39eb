//! `[bridge.streamr]`: the Streamr bridge's configuration (TOML).
//!
//! ```toml
//! [bridge.streamr]
//! mqtt = "mqtt://127.0.0.1:1883"        # the Streamr node's MQTT plugin
//! password = "…"                        # the node's API key, if it wants one
//! log = "vouch-data/log"                # outbound: the co-located verifier's log
//! streams = ["0x…/livepeer/telemetry"]  # inbound: MQTT topics (wildcards allowed)
//! bootstrap = ["/ip4/…/tcp/…/p2p/…"]    # inbound: verifiers to gossip to
//! node_config = "verifier.toml"         # authority, validation and log from the node's file
//! [bridge.streamr.authority]            # or an authority of its own
//! snapshot = "authority.json"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::http_server::HttpLimits;
use crate::node::NodeConfig;
use crate::node::config::AuthorityConfig;
use crate::validate::ValidationConfig;

use super::BridgeError;

/// Everything the Streamr bridge needs; every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamrBridgeConfig {
    /// The broker: `mqtt://HOST[:PORT]` (port 1883 by default).
    pub mqtt: String,
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
    /// Inbound: MQTT topic filters (stream ids) to subscribe to.
    pub streams: Vec<String>,
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
    /// MQTT messages waiting for validation (the broker is back-pressured beyond).
    pub inbound_queue: usize,
    /// Who may publish (inbound validation).
    pub authority: AuthorityConfig,
    /// Bounds of the inbound validation pipeline.
    pub validation: ValidationConfig,
}

impl Default for StreamrBridgeConfig {
    fn default() -> Self {
        StreamrBridgeConfig {
            mqtt: "mqtt://127.0.0.1:1883".to_owned(),
            client_id: None,
            username: None,
            password: None,
            log: None,
            cursor: None,
            streams: Vec::new(),
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
        let text = std::fs::read_to_string(path)
            .map_err(|e| BridgeError::Config(format!("reading {}: {e}", path.display())))?;
        let root: FileRoot = toml::from_str(&text)
            .map_err(|e| BridgeError::Config(format!("{}: {e}", path.display())))?;
        let mut config = root.bridge.streamr;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            config.log.as_mut(),
            config.cursor.as_mut(),
            config.node_config.as_mut(),
            config.authority.snapshot.as_mut(),
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
        let node = NodeConfig::from_file(&path)
            .map_err(|e| BridgeError::Config(format!("node config: {e}")))?;
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

    /// `(host, port)` of the `mqtt` URL.
    pub fn broker(&self) -> Result<(String, u16), BridgeError> {
        let bad = |m: &str| BridgeError::Config(format!("mqtt URL {:?}: {m}", self.mqtt));
        let rest = self
            .mqtt
            .strip_prefix("mqtt://")
            .or_else(|| self.mqtt.strip_prefix("tcp://"))
            .ok_or_else(|| bad("must start with mqtt:// (TLS is not built in)"))?;
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') || rest.contains('@') {
            return Err(bad("expected mqtt://HOST[:PORT]"));
        }
        match rest.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !host.ends_with(':') => {
                let port = port.parse().map_err(|_| bad("bad port"))?;
                Ok((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port))
            }
            _ => Ok((rest.to_owned(), 1883)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let with = |u: &str| StreamrBridgeConfig { mqtt: u.to_owned(), ..Default::default() };
        assert_eq!(with("mqtt://127.0.0.1:1884").broker().unwrap(), ("127.0.0.1".into(), 1884));
        assert_eq!(with("mqtt://broker").broker().unwrap(), ("broker".into(), 1883));
        assert_eq!(with("tcp://h:1/").broker().unwrap(), ("h".into(), 1));
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
             [bridge.streamr.authority]\nsnapshot = \"a.json\"\n",
        )
        .unwrap();
        let c = StreamrBridgeConfig::from_file(&path).unwrap();
        assert_eq!(c.log.clone().unwrap(), dir.path().join("data/log"));
        assert_eq!(c.cursor_path().unwrap(), dir.path().join("data/streamr-bridge.cursor"));
        assert_eq!(c.authority.snapshot.unwrap(), dir.path().join("a.json"));
        std::fs::write(&path, "[bridge.streamr]\nlogg = 1\n").unwrap();
        assert!(StreamrBridgeConfig::from_file(&path).is_err());
    }
}
