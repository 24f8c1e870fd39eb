//! Why a node could not start or stopped: [`NodeError`] and the typed causes
//! under each of its kinds. The messages (`configuration: …`, `state: …`)
//! are what operators read and stay stable.

use std::io;
use std::path::PathBuf;

use vouch_delegation::authority::onchain::OnChainError;
use vouch_delegation::authority::snapshot::SnapshotError as AuthoritySnapshotError;

use crate::api::ApiConfigError;
use crate::config_file::FileError;
use crate::converge::checkpointer::SignerError;
use crate::http_server::HttpServerError;
use crate::scores::ScoreError;
use crate::sink::clickhouse::SinkError;
use crate::store::log::LogError;
use crate::store::snapshot::SnapshotError;
use crate::store::state::StateError;

/// Why the node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The authority view could not be loaded.
    #[error("authority: {0}")]
    Authority(#[from] AuthorityError),
    /// The log failed (the node stops: nothing more can be acknowledged).
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// The HTTP socket could not be bound.
    #[error("network: {0}")]
    HttpBind(#[source] HttpServerError),
    /// The swarm reported no listen address in time.
    #[error("network: timed out waiting for listen addresses")]
    ListenTimeout,
    /// The gossip swarm could not be set up, subscribe or listen.
    #[error("network: {0}")]
    Gossip(#[from] vouch_net::NetError),
    /// The ingest worker returned while the node was still running.
    #[error("ingest worker: stopped before shutdown was asked")]
    WorkerStopped,
    /// The ingest worker panicked or could not be joined.
    #[error("ingest worker: {0}")]
    WorkerJoin(#[source] tokio::task::JoinError),
    /// The derived state (redb), the SLA snapshot or the node's identity file failed.
    #[error("state: {0}")]
    State(#[from] StateFailure),
}

/// What is wrong with the configuration ([`NodeError::Config`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file, or a file it names (a policy), cannot be read or parsed.
    #[error(transparent)]
    File(#[from] FileError),
    /// `[p2p] partitions` does not parse.
    #[error("partitions {given:?}: {source}")]
    Partitions {
        /// The text as configured.
        given: String,
        /// Why it does not parse.
        source: vouch_net::PartitionsError,
    },
    /// A listen or bootstrap address that is not a multiaddr.
    #[error("{what} address {given:?}: {source}")]
    Address {
        /// `listen` or `bootstrap`.
        what: &'static str,
        /// The address as configured.
        given: String,
        /// Why it does not parse.
        source: libp2p::multiaddr::Error,
    },
    /// `[p2p] listen` is empty.
    #[error("no p2p listen address")]
    NoListen,
    /// The checkpoint key (`[checkpoint]`) cannot be used.
    #[error(transparent)]
    Checkpoint(#[from] SignerError),
    /// A sink (`[sinks]`) cannot be started.
    #[error(transparent)]
    Sinks(#[from] SinkError),
    /// The SLA policy or registry does not parse.
    #[error(transparent)]
    Scores(#[from] ScoreError),
    /// The HTTP limits (`[http]`) are unusable.
    #[error(transparent)]
    Http(HttpServerError),
    /// The API settings (`[api]`) are unusable.
    #[error("[api]: {0}")]
    Api(#[source] ApiConfigError),
}

/// Why the authority view could not be loaded ([`NodeError::Authority`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// The snapshot file is unreadable or malformed.
    #[error(transparent)]
    Snapshot(#[from] AuthoritySnapshotError),
    /// The chain could not be read.
    #[error(transparent)]
    OnChain(#[from] OnChainError),
    /// Neither a snapshot nor an RPC URL and Controller are configured.
    #[error("give [authority] snapshot (or --authority-snapshot), or rpc and controller")]
    NotConfigured,
}

/// Why the derived state failed ([`NodeError::State`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateFailure {
    /// The redb state store.
    #[error(transparent)]
    Store(#[from] StateError),
    /// The SLA engine's snapshot file.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A file operation on the state or identity file.
    #[error("{action} {}: {source}", path.display())]
    File {
        /// What was done (`reading`, `deleting`, `creating`, ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
    /// The identity file holds no libp2p key, or a new key cannot be encoded.
    #[error("{action} {}: {source}", path.display())]
    Identity {
        /// `decoding` or `encoding`.
        action: &'static str,
        /// The identity file.
        path: PathBuf,
        /// libp2p's error.
        source: libp2p::identity::DecodingError,
    },
}

impl From<StateError> for NodeError {
    fn from(e: StateError) -> NodeError {
        NodeError::State(e.into())
    }
}

impl From<SnapshotError> for NodeError {
    fn from(e: SnapshotError) -> NodeError {
        NodeError::State(e.into())
    }
}
