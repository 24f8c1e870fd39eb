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

mod catch_up;
pub mod config;
mod error;
pub mod http;
mod identity_file;
pub mod ingest;
pub mod memory;
mod metrics;
mod prepare;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use vouch_delegation::authority::onchain::{ChainOptions, OnChainAuthority, RefreshHandle};
use vouch_delegation::authority::{Authority, CachedAuthority, snapshot};
use vouch_net::sync::SyncEvent;
use vouch_net::{GossipNode, Inbound, Partitions, SyncSetup};

use crate::api::{Api, SlaSource};
use crate::converge::{CheckpointSigner, Convergence, LogSyncStore, minute_of};
use crate::http_server::{HttpServer, HttpServerError};
use crate::scores::{PolicyFiles, Scores};
use crate::sink::RunningSinks;
use crate::sink::aggregates::AggregateExport;
use crate::store::{
    LogConfig, STATE_FILE, SegmentLog, Snapshot, SnapshotError, SnapshotFile, StateError,
    StateStore,
};
use crate::validate::Pipeline;

use catch_up::{CatchUp, CaughtUp};
pub use config::NodeConfig;
pub use error::{AuthorityError, ConfigError, NodeError, StateFailure};
use ingest::{
    INDEX_SEALED_MINUTES, Item, Metrics, Queue, Synced, Verdict, Worker, WorkerParts, WorkerSla,
};

/// How long the node waits for its listeners to report their addresses.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Own checkpoints that may wait for the swarm task (one a minute; beyond, dropped and counted).
const CONTROL_PUBLISH_QUEUE: usize = 64;

/// How often sync rounds are started and the seal hold is checked.
const SYNC_TICK: Duration = Duration::from_secs(1);

/// Verdict groups that may wait for the swarm task (the worker blocks beyond).
const VERDICT_GROUPS: usize = 64;

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
        let view = snapshot::load(path).map_err(AuthorityError::from)?;
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
                .map_err(AuthorityError::from)?;
            Ok((cache, Some(handle)))
        }
        _ => Err(AuthorityError::NotConfigured.into()),
    }
}

/// Runs a verifier node until `shutdown` resolves, calling `on_start` once it
/// listens (gossip and HTTP). Returns after the final commit.
///
/// The one place the subsystems are wired: each is opened or started by one
/// step of the node's builder, in this order (authority, storage, identity,
/// scores, gossip, HTTP, worker); after the loop they are stopped in the
/// order the final commit needs (queue, worker, HTTP, authority refresher,
/// aggregate export, sinks; the swarm last).
pub async fn run(
    config: NodeConfig,
    on_start: impl FnOnce(&Started),
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let node = NodeBuilder::new(config)?;
    let (authority, refresher) = load_authority(&node.config.authority).await?;
    let storage = node.open_storage()?;
    let keypair = identity_file::load_or_create(&node.data_dir.join(identity_file::FILE))?;
    let sla = node.open_scores(storage.snapshot.as_ref())?;
    let authority: Arc<dyn Authority> = authority;
    let pipeline = Pipeline::new(node.config.validation.clone(), Arc::clone(&authority));
    let converge = Arc::new(node.convergence()?);
    let (mut gossip, p2p_listen) = node.start_gossip(keypair, &converge).await?;
    let (publish, published) = mpsc::channel::<Vec<u8>>(CONTROL_PUBLISH_QUEUE);
    let metrics = Arc::new(Metrics::default());
    metrics.catching_up.store(true, Ordering::Relaxed);
    let (http, aggregates) =
        node.start_http(&metrics, &gossip, &sla.scores, &converge, storage.sinks).await?;

    on_start(&Started {
        peer_id: gossip.local_peer_id().to_string(),
        p2p_listen,
        http: format!("http://{}", http.addr),
    });
    node.dial_bootstrap(&mut gossip);

    let ingest = node.config.ingest;
    let queue =
        Arc::new(Queue::new(ingest.queue_capacity, ingest.queue_bytes, ingest.sync_queue_batches));
    let (verdicts, verdict_rx) = mpsc::channel::<Vec<Verdict>>(VERDICT_GROUPS);
    let worker = spawn_worker(WorkerParts {
        pipeline,
        log: storage.log,
        state: storage.state,
        authority,
        config: node.config.ingest,
        retention: node.retention(),
        queue: Arc::clone(&queue),
        verdicts,
        metrics: Arc::clone(&metrics),
        sla: WorkerSla {
            scores: Arc::clone(&sla.scores),
            files: sla.files,
            snapshot: storage.snapshot_file,
            applied: storage.snapshot.map_or(0, |s| s.applied),
            restored: sla.restored,
            snapshot_every: Duration::from_secs(node.config.sla.snapshot_interval_secs.max(1)),
            aggregates,
            converge,
            publish,
        },
        drop_principal: node.drop_principal(),
    });

    let mut running = Subsystems {
        queue,
        verdicts: verdict_rx,
        published,
        worker,
        metrics,
        http,
        refresher,
        scores: sla.scores,
        catch_up: CatchUp::new(Instant::now()),
    };
    let ingest_stopped = running.serve(&mut gossip, shutdown).await;
    // The swarm stays up until everything else has stopped.
    let result = running.stop(ingest_stopped).await;
    drop(gossip);
    result
}

/// The node's configuration, checked, and the steps that open or start each
/// subsystem from it.
struct NodeBuilder {
    config: NodeConfig,
    data_dir: PathBuf,
    partitions: Partitions,
    listen: Vec<Multiaddr>,
    bootstrap: Vec<Multiaddr>,
}

/// The log, its followers and the derived state, opened.
struct Storage {
    log: SegmentLog,
    sinks: RunningSinks,
    state: StateStore,
    snapshot_file: SnapshotFile,
    snapshot: Option<Snapshot>,
}

/// The SLA engine, restored from its snapshot when there is a usable one.
struct Sla {
    scores: Arc<Scores>,
    files: PolicyFiles,
    restored: bool,
}

/// The HTTP API, serving, and the task of the ClickHouse aggregate export
/// it reports on.
struct Http {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    aggregates_task: Option<JoinHandle<()>>,
    /// The sinks, stopped once the server has.
    sinks: RunningSinks,
}

impl NodeBuilder {
    /// Checks what can be checked before anything is opened: the partition
    /// list and the gossip addresses.
    fn new(config: NodeConfig) -> Result<NodeBuilder, NodeError> {
        let partitions = config.p2p.parse_partitions()?;
        let parse_addrs =
            |list: &[String], what: &'static str| -> Result<Vec<Multiaddr>, NodeError> {
                list.iter()
                    .map(|a| {
                        a.parse().map_err(|source| {
                            ConfigError::Address { what, given: a.clone(), source }.into()
                        })
                    })
                    .collect()
            };
        let listen = parse_addrs(&config.p2p.listen, "listen")?;
        let bootstrap = parse_addrs(&config.p2p.bootstrap, "bootstrap")?;
        if listen.is_empty() {
            return Err(ConfigError::NoListen.into());
        }
        Ok(NodeBuilder { data_dir: config.data_dir(), config, partitions, listen, bootstrap })
    }

    /// The principal a test-only build leaves out (`[faults]`).
    fn drop_principal(&self) -> Option<vouch_schema::Address> {
        #[cfg(feature = "fault-injection")]
        if let Some(p) = self.config.faults.drop_principal {
            tracing::warn!(principal = %p, "fault injection: leaving this principal's envelopes out");
            return Some(p);
        }
        None
    }

    /// The envelope index and checkpoint signer (`[checkpoint]`).
    fn convergence(&self) -> Result<Convergence, NodeError> {
        let signer = CheckpointSigner::load(&self.config.checkpoint).map_err(ConfigError::from)?;
        let partitions = self.partitions.iter().collect();
        let network = self.config.validation.network;
        Ok(Convergence::new(network, partitions, signer, &self.config.checkpoint))
    }

    /// Opens the log (recovering its tail), starts its followers, and opens
    /// the derived state.
    fn open_storage(&self) -> Result<Storage, NodeError> {
        let log_dir = self.data_dir.join("log");
        let (log, recovery) = SegmentLog::open(
            &log_dir,
            LogConfig {
                segment_bytes: self.config.log.segment_bytes,
                cached_tail_bytes: self.config.log.cached_tail_bytes,
            },
        )?;
        tracing::info!(dir = %log_dir.display(), ?recovery, "log opened");
        let sinks = crate::sink::RunningSinks::spawn(&self.config.sinks, &log_dir)
            .map_err(ConfigError::from)?;
        let (state, snapshot_file, snapshot) =
            open_state(&self.data_dir, self.config.rebuild_state)?;
        Ok(Storage { log, sinks, state, snapshot_file, snapshot })
    }

    /// The SLA engine over the configured policy, from `snapshot` if usable.
    fn open_scores(&self, snapshot: Option<&Snapshot>) -> Result<Sla, NodeError> {
        let files = self.config.sla.files()?;
        let (scores, restored) = Scores::open(&files, snapshot.map(|s| s.bytes.as_slice()))
            .map_err(ConfigError::from)?;
        Ok(Sla { scores: Arc::new(scores), files, restored })
    }

    /// The swarm: subscribed to the followed partitions and the control
    /// topic, serving and running sync over `converge`'s index and the log,
    /// listening. Returns it and the addresses it listens on.
    async fn start_gossip(
        &self,
        keypair: libp2p::identity::Keypair,
        converge: &Arc<Convergence>,
    ) -> Result<(GossipNode, Vec<String>), NodeError> {
        let mut topics = self.partitions.topics();
        topics.push(vouch_net::control_topic());
        let agent = format!("vouch-verifier/{}", env!("CARGO_PKG_VERSION"));
        let store = LogSyncStore::new(Arc::clone(converge), self.data_dir.join("log"));
        let setup = SyncSetup {
            store: Arc::new(store),
            partitions: converge.partitions(),
            config: self.config.sync.clone(),
        };
        let mut gossip =
            GossipNode::with_sync(keypair, agent, &topics, self.config.p2p.limits, setup)?;
        let listening = tokio::time::timeout(LISTEN_TIMEOUT, gossip.listen(&self.listen))
            .await
            .map_err(|_| NodeError::ListenTimeout)??;
        Ok((gossip, listening.iter().map(ToString::to_string).collect()))
    }

    /// The HTTP API: bound (gossip's connection caps are kept free of HTTP
    /// connections) and serving health, metrics, stats and the scores.
    /// Also starts the aggregate export when a ClickHouse sink is
    /// configured, and returns it for the worker (its only other owner is
    /// `/metrics`).
    async fn start_http(
        &self,
        metrics: &Arc<Metrics>,
        gossip: &GossipNode,
        scores: &Arc<Scores>,
        converge: &Arc<Convergence>,
        sinks: RunningSinks,
    ) -> Result<(Http, Option<Arc<AggregateExport>>), NodeError> {
        let config = &self.config;
        let http_server = HttpServer::bind(
            config.http.listen,
            &config.http.limits,
            config.p2p.limits.max_descriptors(),
        )
        .await
        .map_err(|e| match e {
            HttpServerError::Bind { .. } => NodeError::HttpBind(e),
            _ => ConfigError::Http(e).into(),
        })?;
        let addr = http_server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let api = Api::new(Arc::clone(scores) as Arc<dyn SlaSource>, &config.api)
            .map_err(ConfigError::Api)?;
        let (aggregates, aggregates_task) = match sinks.clickhouse_client() {
            Some(client) => {
                let (export, task) = AggregateExport::spawn(client.clone());
                (Some(Arc::new(export)), Some(task))
            }
            None => (None, None),
        };
        let registry = metrics::registry(metrics::Sources {
            ingest: Arc::clone(metrics),
            http: http_server.metrics(),
            p2p: gossip.connections(),
            sync: gossip.sync_stats(),
            api: api.metrics(),
            scores: Arc::clone(scores),
            converge: Arc::clone(converge),
            clickhouse: sinks.clickhouse_metrics(),
            aggregates: aggregates.clone(),
        });
        let app =
            api.wrap(http::router(Arc::clone(metrics), Arc::new(registry), Arc::clone(scores)));
        let task = tokio::spawn(http_server.serve(app, async move {
            let _ = stopped.await;
        }));
        Ok((Http { addr, stop, task, aggregates_task, sinks }, aggregates))
    }

    /// Dials every bootstrap peer (a failure is logged: peers may dial us).
    fn dial_bootstrap(&self, gossip: &mut GossipNode) {
        for addr in &self.bootstrap {
            if let Err(e) = gossip.dial(addr) {
                tracing::warn!(%addr, %e, "bootstrap dial failed");
            }
        }
    }

    /// How long raw segments are kept (`None`: forever).
    fn retention(&self) -> Option<Duration> {
        let days = self.config.log.retention_days;
        (days > 0).then(|| Duration::from_secs(days.saturating_mul(86_400)))
    }
}

/// Starts the ingest worker on a blocking thread.
fn spawn_worker(parts: WorkerParts) -> JoinHandle<Result<(), NodeError>> {
    let worker = Worker::new(parts);
    tokio::task::spawn_blocking(move || worker.run())
}

/// The subsystems of a started node (the swarm aside, which the caller
/// keeps until they have stopped).
struct Subsystems {
    queue: Arc<Queue>,
    verdicts: mpsc::Receiver<Vec<Verdict>>,
    /// Control-topic messages from the worker (own signed checkpoints).
    published: mpsc::Receiver<Vec<u8>>,
    worker: JoinHandle<Result<(), NodeError>>,
    metrics: Arc<Metrics>,
    http: Http,
    refresher: Option<RefreshHandle>,
    /// What sync rounds cover: the minutes not sealed yet.
    scores: Arc<Scores>,
    /// The seal hold after start, until caught up with the peers.
    catch_up: CatchUp,
}

impl Subsystems {
    /// The node's loop: gossip's messages into the queue, the worker's
    /// verdicts back to gossip, until `shutdown` resolves (false) or the
    /// worker stops by itself (true: the node exits with an error).
    async fn serve(&mut self, gossip: &mut GossipNode, shutdown: impl Future<Output = ()>) -> bool {
        let control = vouch_net::control_topic();
        let control_hash = control.hash();
        let mut tick = tokio::time::interval(SYNC_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => {
                    tracing::info!("shutting down");
                    return false;
                }
                _ = tick.tick() => self.sync_tick(gossip),
                Some(data) = self.published.recv() => {
                    gossip.publish(&control, data);
                }
                verdicts = self.verdicts.recv() => {
                    let Some(verdicts) = verdicts else {
                        // The worker only drops its sender by returning: an error
                        // (or a panic), since the queue is still open.
                        tracing::error!("ingest worker stopped");
                        return true;
                    };
                    for v in verdicts {
                        match &v.id {
                            Some(id) => report(gossip, &self.metrics, id, &v.source, v.acceptance),
                            // A synced envelope no honest verifier would hold.
                            None if v.acceptance == MessageAcceptance::Reject => gossip.penalize(&v.source),
                            None => {}
                        }
                    }
                }
                inbound = gossip.next() => match inbound {
                    Inbound::Message { id, source, topic, data } => {
                        let item = Item {
                            id,
                            source,
                            control: topic == control_hash,
                            topic: topic.into_string(),
                            data,
                        };
                        for old in self.queue.push(item) {
                            ingest::count_shed(&self.metrics);
                            report(gossip, &self.metrics, &old.id, &old.source, MessageAcceptance::Ignore);
                        }
                        let bytes = self.queue.bytes() as u64;
                        self.metrics.queue_bytes.store(bytes, Ordering::Relaxed);
                    }
                    Inbound::Sync(SyncEvent::Fetched { peer, envelopes }) => {
                        if let Some(shed) = self.queue.push_synced(Synced { peer, envelopes }) {
                            // Its ids are claimed as fetched: give them up so the
                            // next round fetches them again at once, and hold seals
                            // until every peer completed a round after this.
                            self.metrics.sync_batches_shed.fetch_add(1, Ordering::Relaxed);
                            gossip.release_sync_claims(
                                shed.envelopes.iter().map(|e| vouch_schema::merkle::envelope_id(e)),
                            );
                            self.catch_up.batch_shed();
                        }
                    }
                    Inbound::Sync(SyncEvent::RoundEnded { peer, end, counts }) => {
                        tracing::debug!(%peer, ?end, ?counts, "sync round ended");
                        self.catch_up.round_ended(peer, end);
                    }
                    Inbound::SlowPeer { peer_id, failed_messages } => {
                        // Forwards (and gossip) a peer could not take in time: counted, not silent.
                        let n = failed_messages.priority + failed_messages.non_priority;
                        self.metrics.gossip_send_failed.fetch_add(n as u64, Ordering::Relaxed);
                        tracing::warn!(%peer_id, ?failed_messages, "a peer could not take messages in time");
                    }
                },
            }
        }
    }

    /// Every [`SYNC_TICK`]: starts sync rounds over the minutes not sealed
    /// yet (at most the last [`INDEX_SEALED_MINUTES`]), and ends the seal
    /// hold once caught up.
    fn sync_tick(&mut self, gossip: &mut GossipNode) {
        let now = minute_of(crate::clock::now_ms());
        let from =
            minute_of(self.scores.sealed_end_ms()).max(now.saturating_sub(INDEX_SEALED_MINUTES));
        // While fetched batches wait for validation, fetching more would only
        // shed them: rounds resume once the worker has room.
        if !self.queue.synced_full() {
            gossip.sync_round(from, now);
        }
        if let Some(why) = self.catch_up.check(gossip.sync_peers(), Instant::now()) {
            match why {
                CaughtUp::TimedOut => {
                    tracing::warn!(
                        "sync peers did not complete a round in time; sealing with what is held"
                    )
                }
                _ => tracing::info!(?why, "caught up with peers; sealing"),
            }
            self.metrics.catching_up.store(false, Ordering::Relaxed);
        }
    }

    /// Stops in the order the final commit needs: no more input, the worker
    /// commits, then HTTP, the authority refresher, the aggregate export and
    /// the sinks stop. `ingest_stopped`: the worker stopped before shutdown
    /// was asked (the node exits with an error).
    async fn stop(self, ingest_stopped: bool) -> Result<(), NodeError> {
        let Subsystems { queue, verdicts, worker, metrics, http, refresher, .. } = self;
        queue.close();
        drop(verdicts);
        let worker_result = match worker.await {
            Ok(Ok(())) if ingest_stopped => Err(NodeError::WorkerStopped),
            Ok(result) => result,
            Err(e) => Err(NodeError::WorkerJoin(e)),
        };
        // Before HTTP stops: `/healthz` answers 503 with the reason meanwhile.
        if let Err(e) = &worker_result {
            tracing::error!(%e, "ingestion stopped; the node exits with an error");
            metrics.mark_ingest_stopped(e.to_string());
        }
        let Http { stop, task, aggregates_task, sinks, .. } = http;
        let _ = stop.send(());
        if let Err(e) = task.await {
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
            tracing::warn!(
                "aggregate inserts still pending at shutdown; `vouch replay` rebuilds them"
            );
            task.abort();
        }
        sinks.stop().await;
        worker_result
    }
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
    let remove_state = || -> Result<(), NodeError> {
        match std::fs::remove_file(&state_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                let path = state_path.clone();
                Err(StateFailure::File { action: "deleting", path, source: e }.into())
            }
            _ => Ok(()),
        }
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
            StateStore::open(&state_path)?
        }
        other => other?,
    };
    if fresh {
        snapshot_file.remove()?;
    }
    let snapshot = match snapshot_file.read() {
        Ok(s) => s,
        Err(e @ SnapshotError::Invalid { .. }) => {
            tracing::warn!(%e, "SLA snapshot not usable; rebuilding the scores from the log");
            None
        }
        Err(e) => return Err(e.into()),
    };
    Ok((state, snapshot_file, snapshot))
}

/// Reports a verdict to gossip; one gossipsub no longer holds is counted.
fn report(
    gossip: &mut GossipNode,
    metrics: &Metrics,
    id: &MessageId,
    source: &PeerId,
    acceptance: MessageAcceptance,
) {
    if !gossip.report(id, source, acceptance) {
        metrics.verdicts_dropped.fetch_add(1, Ordering::Relaxed);
    }
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
