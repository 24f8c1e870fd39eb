//! The verifier node: gossip in, validation, durable log, HTTP out.
//!
//! One tokio task drives the libp2p swarm (gossipsub with
//! `validate_messages`, DESIGN.md §5). Every telemetry or control message it
//! receives goes into a bounded queue ([`ingest`]) that sheds its oldest
//! entry when full (reported Ignore, counted). A worker thread takes groups
//! from the queue, runs the [`crate::validate`] pipeline, appends what passed
//! to the [`crate::store`] log, commits the group with one fsync, and only
//! then reports Accept to gossip (Reject/Ignore per the outcome table). The
//! authority view in force is recorded in the log at start and whenever its
//! hash changes. The HTTP API ([`http`]) serves health, metrics and stats.
//! On shutdown the swarm stops, the worker commits what it appended, and the
//! log is fsynced before [`run`] returns.

pub mod config;
pub mod http;
mod identity_file;
pub mod ingest;
mod p2p;

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm, multiaddr::Protocol};
use tokio::sync::mpsc;
use vouch_delegation::authority::onchain::{ChainOptions, OnChainAuthority, RefreshHandle};
use vouch_delegation::authority::{Authority, CachedAuthority, snapshot};
use vouch_schema::topic;
use vouch_sdk::transport::gossip::{self, Node, NodeEvent};

use crate::api::{Api, SlaSource};
use crate::http_server::{HttpServer, HttpServerError};
use crate::scores::Scores;
use crate::sink::aggregates::AggregateExport;
use crate::store::{
    LogConfig, LogError, STATE_FILE, SegmentLog, Snapshot, SnapshotError, SnapshotFile, StateError,
    StateStore,
};
use crate::validate::Pipeline;

pub use config::NodeConfig;
use ingest::{Item, Metrics, Queue, Verdict, Worker, WorkerSla};

/// How long the node waits for its listeners to report their addresses.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Verdict groups that may wait for the swarm task (the worker blocks beyond).
const VERDICT_GROUPS: usize = 64;

/// Why the node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The authority view could not be loaded.
    #[error("authority: {0}")]
    Authority(String),
    /// The log failed (the node stops: nothing more can be acknowledged).
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// Networking (listening, the swarm, the HTTP socket) failed.
    #[error("network: {0}")]
    Network(String),
    /// The ingest worker panicked or could not be joined.
    #[error("ingest worker: {0}")]
    Worker(String),
    /// The derived state (redb) or the node's identity file failed.
    #[error("state: {0}")]
    State(String),
}

/// What a started node announces: its peer id and where it actually listens.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Started {
    /// The libp2p peer id.
    pub peer_id: String,
    /// Gossip listen addresses, each ending in `/p2p/<peer id>`.
    pub p2p_listen: Vec<String>,
    /// The HTTP API's base URL.
    pub http: String,
}

/// Loads the authority named by `config`: a snapshot, or the chain with a
/// background refresher (whose handle is returned so it can be stopped).
pub async fn load_authority(
    config: &config::AuthorityConfig,
) -> Result<(Arc<CachedAuthority>, Option<RefreshHandle>), NodeError> {
    if let Some(path) = &config.snapshot {
        let view = snapshot::load(path).map_err(|e| NodeError::Authority(e.to_string()))?;
        return Ok((Arc::new(CachedAuthority::new(view)), None));
    }
    match (&config.rpc, config.controller) {
        (Some(rpc), Some(controller)) => {
            let options = ChainOptions {
                timeout: Duration::from_secs(config.rpc_timeout_secs.max(1)),
                gateways: config.gateways.clone(),
                ..ChainOptions::default()
            };
            let (cache, handle) = OnChainAuthority::new(rpc.clone(), controller)
                .with_options(options)
                .with_refresh_interval(Duration::from_secs(config.refresh_interval_secs))
                .spawn()
                .await
                .map_err(|e| NodeError::Authority(e.to_string()))?;
            Ok((cache, Some(handle)))
        }
        _ => Err(NodeError::Authority(
            "give [authority] snapshot (or --authority-snapshot), or rpc and controller".to_owned(),
        )),
    }
}

/// Runs a verifier node until `shutdown` resolves, calling `on_start` once it
/// listens (gossip and HTTP). Returns after the final commit.
pub async fn run(
    config: NodeConfig,
    on_start: impl FnOnce(&Started),
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let partitions = config::parse_partitions(&config.p2p.partitions)?;
    let parse_addrs = |list: &[String], what: &str| -> Result<Vec<Multiaddr>, NodeError> {
        list.iter()
            .map(|a| a.parse().map_err(|e| NodeError::Config(format!("{what} address {a:?}: {e}"))))
            .collect()
    };
    let listen = parse_addrs(&config.p2p.listen, "listen")?;
    let bootstrap = parse_addrs(&config.p2p.bootstrap, "bootstrap")?;
    if listen.is_empty() {
        return Err(NodeError::Config("no p2p listen address".to_owned()));
    }

    let (authority, refresher) = load_authority(&config.authority).await?;
    let data_dir = config.data_dir();
    let log_dir = data_dir.join("log");
    let (log, recovery) =
        SegmentLog::open(&log_dir, LogConfig { segment_bytes: config.log.segment_bytes })?;
    tracing::info!(dir = %log_dir.display(), ?recovery, "log opened");
    let sinks = crate::sink::RunningSinks::spawn(&config.sinks, &log_dir)
        .map_err(|e| NodeError::Config(e.to_string()))?;
    let (state, snapshot_file, snapshot) = open_state(&data_dir, config.rebuild_state)?;
    let keypair = identity_file::load_or_create(&data_dir.join(identity_file::FILE))?;
    let files = config.sla.files()?;
    let (scores, restored) = Scores::open(&files, snapshot.as_ref().map(|s| s.bytes.as_slice()))
        .map_err(|e| NodeError::Config(e.to_string()))?;
    let scores = Arc::new(scores);
    let authority_dyn: Arc<dyn Authority> = authority.clone();
    let pipeline = Pipeline::new(config.validation.clone(), Arc::clone(&authority_dyn));

    // Gossip.
    let mut topics: Vec<IdentTopic> =
        partitions.iter().map(|&p| IdentTopic::new(topic::telemetry_topic(p))).collect();
    let control_topic = IdentTopic::new(topic::CONTROL_TOPIC);
    topics.push(control_topic.clone());
    let agent = format!("vouch-verifier/{}", env!("CARGO_PKG_VERSION"));
    let mut swarm = gossip::build_swarm_with_caps(
        keypair,
        agent,
        topics.iter().map(IdentTopic::hash),
        config.p2p.limits,
    )
    .map_err(|e| NodeError::Network(e.to_string()))?;
    for t in &topics {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(t)
            .map_err(|e| NodeError::Network(format!("subscribing to {t}: {e}")))?;
    }
    let p2p_listen = listen_all(&mut swarm, &listen).await?;

    // HTTP: gossip's connection caps are kept free of HTTP connections.
    let metrics = Arc::new(Metrics::default());
    let p2p_metrics = Arc::new(p2p::P2pMetrics::default());
    let http_server = HttpServer::bind(
        config.http.listen,
        &config.http.limits,
        config.p2p.limits.max_descriptors(),
    )
    .await
    .map_err(|e| match e {
        HttpServerError::Bind { .. } => NodeError::Network(e.to_string()),
        _ => NodeError::Config(e.to_string()),
    })?;
    let http_addr: SocketAddr = http_server.local_addr();
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let api = Api::new(Arc::clone(&scores) as Arc<dyn SlaSource>, &config.api)
        .map_err(|e| NodeError::Config(format!("[api]: {e}")))?;
    let (aggregates, aggregates_task) = match sinks.clickhouse_client() {
        Some(client) => {
            let (export, task) = AggregateExport::spawn(client.clone());
            (Some(Arc::new(export)), Some(task))
        }
        None => (None, None),
    };
    let sinks = Arc::new(sinks);
    let mut extra: Vec<http::Render> = vec![
        {
            let m = http_server.metrics();
            Arc::new(move |out: &mut String| m.render_metrics(out))
        },
        {
            let m = Arc::clone(&p2p_metrics);
            Arc::new(move |out: &mut String| m.render_metrics(out))
        },
        {
            let m = api.metrics();
            Arc::new(move |out: &mut String| m.render_metrics(out))
        },
        {
            let s = Arc::clone(&scores);
            Arc::new(move |out: &mut String| s.render_metrics(out))
        },
        {
            let s = Arc::clone(&sinks);
            Arc::new(move |out: &mut String| s.render_metrics(out))
        },
    ];
    if let Some(export) = &aggregates {
        let export = Arc::clone(export);
        extra.push(Arc::new(move |out: &mut String| export.render_metrics(out)));
    }
    let app = api.wrap(http::router(Arc::clone(&metrics), extra));
    let http_task = tokio::spawn(http_server.serve(app, async move {
        let _ = http_stopped.await;
    }));

    on_start(&Started {
        peer_id: swarm.local_peer_id().to_string(),
        p2p_listen,
        http: format!("http://{http_addr}"),
    });
    for addr in &bootstrap {
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!(%addr, %e, "bootstrap dial failed");
        }
    }

    // The worker.
    let queue = Arc::new(Queue::new(config.ingest.queue_capacity));
    let (verdict_tx, mut verdict_rx) = mpsc::channel::<Vec<Verdict>>(VERDICT_GROUPS);
    let retention = (config.log.retention_days > 0)
        .then(|| Duration::from_secs(config.log.retention_days.saturating_mul(86_400)));
    let worker = Worker::new(
        pipeline,
        log,
        state,
        authority_dyn,
        config.ingest,
        retention,
        Arc::clone(&queue),
        verdict_tx,
        Arc::clone(&metrics),
        WorkerSla {
            scores: Arc::clone(&scores),
            files,
            snapshot: snapshot_file,
            applied: snapshot.map_or(0, |s| s.applied),
            restored,
            checkpoint_every: Duration::from_secs(config.sla.checkpoint_interval_secs.max(1)),
            aggregates,
        },
    );
    let worker_task = tokio::task::spawn_blocking(move || worker.run());

    let control_hash = control_topic.hash();
    // Set when the worker stopped by itself: the node exits with an error.
    let mut ingest_stopped = false;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("shutting down");
                break;
            }
            verdicts = verdict_rx.recv() => {
                let Some(verdicts) = verdicts else {
                    // The worker only drops its sender by returning: an error
                    // (or a panic), since the queue is still open.
                    tracing::error!("ingest worker stopped");
                    ingest_stopped = true;
                    break;
                };
                for v in verdicts {
                    report(&mut swarm, &metrics, &v.id, &v.source, v.acceptance);
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(NodeEvent::Gossipsub(gossipsub::Event::Message {
                    propagation_source,
                    message_id,
                    message,
                })) => {
                    let item = Item {
                        id: message_id,
                        source: propagation_source,
                        control: message.topic == control_hash,
                        topic: message.topic.into_string(),
                        data: message.data,
                    };
                    if let Some(old) = queue.push(item) {
                        ingest::count_shed(&metrics);
                        report(&mut swarm, &metrics, &old.id, &old.source, MessageAcceptance::Ignore);
                    }
                }
                SwarmEvent::Behaviour(NodeEvent::Gossipsub(gossipsub::Event::SlowPeer {
                    peer_id,
                    failed_messages,
                })) => {
                    // Forwards (and gossip) a peer could not take in time: counted, not silent.
                    let n = failed_messages.priority + failed_messages.non_priority;
                    metrics.gossip_send_failed.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(%peer_id, ?failed_messages, "a peer could not take messages in time");
                }
                SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                    p2p_metrics.connected();
                    tracing::info!(%peer_id, address = %endpoint.get_remote_address(), "connected");
                }
                SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                    p2p_metrics.disconnected();
                    tracing::info!(%peer_id, ?cause, "disconnected");
                }
                SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                    p2p_metrics.incoming_failed(&error);
                    tracing::debug!(%send_back_addr, %error, "incoming connection failed");
                }
                SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                    tracing::warn!(?peer_id, %error, "dial failed");
                }
                _ => {}
            },
        }
    }

    // Stop: no more input, let the worker commit, then stop HTTP and the refresher.
    queue.close();
    drop(verdict_rx);
    let worker_result = match worker_task.await {
        Ok(Ok(())) if ingest_stopped => {
            Err(NodeError::Worker("stopped before shutdown was asked".to_owned()))
        }
        Ok(result) => result,
        Err(e) => Err(NodeError::Worker(e.to_string())),
    };
    // Before HTTP stops: `/healthz` answers 503 with the reason meanwhile.
    if let Err(e) = &worker_result {
        tracing::error!(%e, "ingestion stopped; the node exits with an error");
        metrics.mark_ingest_stopped(e.to_string());
    }
    let _ = http_stop.send(());
    if let Err(e) = http_task.await {
        tracing::warn!(%e, "HTTP server task failed");
    }
    if let Some(handle) = refresher {
        handle.abort();
    }
    // The worker is gone, so is the aggregate queue's sender: give the task
    // a moment to insert what it holds (it never blocks shutdown for long).
    if let Some(mut task) = aggregates_task
        && tokio::time::timeout(Duration::from_secs(2), &mut task).await.is_err()
    {
        tracing::warn!("aggregate inserts still pending at shutdown; `vouch replay` rebuilds them");
        task.abort();
    }
    // The HTTP server is gone, so the sinks' last other owner is too.
    match Arc::try_unwrap(sinks) {
        Ok(sinks) => sinks.stop().await,
        Err(_) => tracing::warn!("sinks still shared at shutdown; not awaited"),
    }
    worker_result
}

/// Opens the derived state: the redb file and the SLA engine's snapshot.
/// With `rebuild`, or when the redb file is new or of another format, both
/// start empty and the worker rebuilds them from the log (the snapshot alone
/// would skip the log's revocations and views that redb no longer holds).
fn open_state(
    data_dir: &std::path::Path,
    rebuild: bool,
) -> Result<(StateStore, SnapshotFile, Option<Snapshot>), NodeError> {
    let state_path = data_dir.join(STATE_FILE);
    let snapshot_file = SnapshotFile::in_dir(data_dir);
    let state_err = |e: &dyn std::fmt::Display| NodeError::State(e.to_string());
    let remove_state = || match std::fs::remove_file(&state_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(NodeError::State(format!("deleting {}: {e}", state_path.display())))
        }
        _ => Ok(()),
    };
    let mut fresh = rebuild || !state_path.exists();
    if rebuild {
        remove_state()?;
        tracing::info!(path = %state_path.display(), "state deleted; rebuilding from the log");
    }
    let state = match StateStore::open(&state_path) {
        Err(StateError::Format { found, .. }) => {
            tracing::warn!(found, "state written by another format; rebuilding it from the log");
            remove_state()?;
            fresh = true;
            StateStore::open(&state_path).map_err(|e| state_err(&e))?
        }
        other => other.map_err(|e| state_err(&e))?,
    };
    if fresh {
        snapshot_file.remove().map_err(|e| state_err(&e))?;
    }
    let snapshot = match snapshot_file.read() {
        Ok(s) => s,
        Err(e @ SnapshotError::Invalid { .. }) => {
            tracing::warn!(%e, "SLA snapshot not usable; rebuilding the scores from the log");
            None
        }
        Err(e) => return Err(state_err(&e)),
    };
    Ok((state, snapshot_file, snapshot))
}

fn report(
    swarm: &mut Swarm<Node>,
    metrics: &Metrics,
    id: &gossipsub::MessageId,
    source: &libp2p::PeerId,
    acceptance: MessageAcceptance,
) {
    if !swarm.behaviour_mut().gossipsub.report_message_validation_result(id, source, acceptance) {
        metrics.verdicts_dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Listens on every address and waits for the actual addresses (port 0 resolved).
async fn listen_all(
    swarm: &mut Swarm<Node>,
    listen: &[Multiaddr],
) -> Result<Vec<String>, NodeError> {
    let mut waiting = HashSet::new();
    for addr in listen {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| NodeError::Network(format!("listening on {addr}: {e}")))?;
        waiting.insert(id);
    }
    let mut addrs = Vec::new();
    let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
    while !waiting.is_empty() {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| NodeError::Network("timed out waiting for listen addresses".to_owned()))?;
        match event {
            SwarmEvent::NewListenAddr { listener_id, address } => {
                waiting.remove(&listener_id);
                addrs.push(address.with(Protocol::P2p(*swarm.local_peer_id())).to_string());
            }
            SwarmEvent::ListenerClosed { reason: Err(e), addresses, .. } => {
                return Err(NodeError::Network(format!("listener on {addresses:?} failed: {e}")));
            }
            SwarmEvent::ListenerError { error, .. } => {
                return Err(NodeError::Network(format!("listener failed: {error}")));
            }
            _ => {}
        }
    }
    Ok(addrs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_authority_source_is_required() {
        let none = config::AuthorityConfig::default();
        assert!(matches!(load_authority(&none).await, Err(NodeError::Authority(_))));
        let rpc_only =
            config::AuthorityConfig { rpc: Some("http://127.0.0.1:1".to_owned()), ..none };
        assert!(matches!(load_authority(&rpc_only).await, Err(NodeError::Authority(_))));
    }

    #[tokio::test]
    async fn a_missing_snapshot_fails_before_anything_listens() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut config =
            NodeConfig { data_dir: Some(dir.path().join("data")), ..NodeConfig::default() };
        config.authority.snapshot = Some(dir.path().join("missing.json"));
        let result = run(config, |_| panic!("must not start"), std::future::pending()).await;
        assert!(matches!(result, Err(NodeError::Authority(_))), "{result:?}");
        assert!(!dir.path().join("data").exists(), "no log created");
    }
}
