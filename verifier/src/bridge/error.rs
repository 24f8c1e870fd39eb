//! Why the bridge could not start or stopped: [`BridgeError`] and the typed
//! configuration problems under it. Messages are stable.

use std::io;
use std::path::PathBuf;

use crate::config_file::FileError;

use vouch_schema::EnvelopeError;

use crate::http_server::HttpServerError;
use crate::node::NodeError;
use crate::store::LogError;

/// Why the bridge could not start or stopped with an error. Messages are stable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(#[from] BridgeConfigError),
    /// The authority view for inbound streams could not be loaded.
    #[error("authority: inbound streams: {0}")]
    Authority(#[source] NodeError),
    /// The verifier log could not be read.
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// A log record that should hold `what` does not decode.
    #[error("log: record {index}: {what}: {source}")]
    Record {
        /// The record's index in the log.
        index: u64,
        /// What it should hold (`envelope`, `certificate`, ...).
        what: &'static str,
        /// The decoder's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An envelope record of the log does not decode.
    #[error("log: record {index} is not an envelope: {source}")]
    NotAnEnvelope {
        /// The record's index in the log.
        index: u64,
        /// The decoder's error.
        source: EnvelopeError,
    },
    /// The task reading the log panicked or was cancelled.
    #[error("log: {0}")]
    ReadTask(#[source] tokio::task::JoinError),
    /// The MQTT client refused a publish.
    #[error("mqtt: {0}")]
    MqttPublish(#[source] rumqttc::ClientError),
    /// The inbound worker stopped taking MQTT messages.
    #[error("mqtt: inbound worker stopped")]
    MqttInboundStopped,
    /// The MQTT event loop ended.
    #[error("mqtt: event loop stopped")]
    MqttEventLoopStopped,
    /// The outbound task stopped taking the sidecar's confirmations.
    #[error("streamr sidecar: the outbound task stopped")]
    OutboundStopped,
    /// The sidecar supervisor stopped taking publishes.
    #[error("streamr sidecar: the sidecar supervisor stopped")]
    SupervisorStopped,
    /// The inbound gossip transport could not be started.
    #[error("network: {0}")]
    Gossip(#[source] vouch_sdk::transport::TransportError),
    /// The HTTP socket could not be bound.
    #[error("network: {0}")]
    HttpBind(#[source] HttpServerError),
    /// One of the bridge's tasks panicked or was cancelled.
    #[error("network: {what} task failed: {source}")]
    Task {
        /// Which task.
        what: &'static str,
        /// Why it could not be joined.
        source: tokio::task::JoinError,
    },
    /// A file (the cursor) could not be read or written.
    #[error("i/o: {action} {}: {source}", path.display())]
    File {
        /// `reading` or `writing`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The export's output could not be written.
    #[error("i/o: {0}")]
    Io(#[source] io::Error),
}

/// What is wrong with the bridge's configuration ([`BridgeError::Config`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeConfigError {
    /// The configuration file, or a file it names, cannot be read or parsed.
    #[error(transparent)]
    File(#[from] FileError),
    /// The StreamrClient configuration file is not JSON.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The StreamrClient configuration file holds JSON other than an object.
    #[error("{} must hold a JSON object (a StreamrClient config)", path.display())]
    ClientNotAnObject {
        /// The file.
        path: PathBuf,
    },
    /// The node configuration named by `node_config` is unusable.
    #[error("node config: {0}")]
    NodeConfig(#[source] NodeError),
    /// The `mqtt` URL is not `mqtt://HOST[:PORT]`.
    #[error("mqtt URL {url:?}: {problem}")]
    MqttUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Neither a log nor streams are configured.
    #[error("nothing to bridge: give a log (outbound) and/or streams (inbound)")]
    NothingToBridge,
    /// Inbound streams are configured without a gossip bootstrap peer.
    #[error("inbound streams need at least one gossip bootstrap peer")]
    NoBootstrap,
    /// Neither an MQTT broker nor a Streamr network is configured.
    #[error("no link configured")]
    NoLink,
    /// No sidecar script is configured and none is built next to the sources.
    #[error(
        "no sidecar script: set [bridge.streamr.network] sidecar (interop/streamr-sidecar/sidecar.mjs, \
         with `npm ci --prefix interop` run)"
    )]
    NoSidecar,
    /// The configured sidecar script is not a file.
    #[error("sidecar script {} does not exist", path.display())]
    MissingSidecar {
        /// The script as configured.
        path: PathBuf,
    },
    /// A Streamr stream with an MQTT wildcard.
    #[error("stream {stream:?}: Streamr has no wildcards (they are for the MQTT feed)")]
    Wildcard {
        /// The stream as configured.
        stream: String,
    },
    /// A partition at or over [`vouch_schema::limits::MAX_PARTITIONS`].
    #[error("partition {0} is out of range 0-99")]
    Partition(u32),
    /// The cursor file holds something other than a log index.
    #[error("cursor file {} does not hold a number", path.display())]
    Cursor {
        /// The cursor file.
        path: PathBuf,
    },
    /// The HTTP limits are unusable.
    #[error(transparent)]
    Http(HttpServerError),
}
