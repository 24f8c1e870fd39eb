//! Bridges from the verifier to other networks (DESIGN.md §11).
//!
//! The Streamr bridge ([`run_streamr`]) is a standalone process beside a
//! verifier that carries signed envelopes to and from a Streamr network
//! **without re-signing**:
//!
//! - **the link** is the Streamr network itself, joined by a supervised Node
//!   sidecar that runs Streamr's own SDK ([`sidecar`]): each envelope's
//!   `StreamMessage` is injected unchanged, so every Streamr subscriber
//!   checks the publisher's own signature and PUBLISH permission. A Streamr
//!   node's MQTT plugin can be fed instead ([`mqtt`]), a convenience whose
//!   messages Streamr re-signs with the node's key, the publisher's
//!   signature riding inside the content;
//! - **outbound** ([`outbound`]): follows the verifier's durable log and
//!   publishes every accepted envelope, moving a cursor once the link
//!   confirmed it (at least once);
//! - **inbound** ([`inbound`]): receives the subscribed streams, validates
//!   each envelope with the same pipeline as gossip, and gossips the
//!   accepted ones to verifiers;
//! - **no loops**: a bounded set of content-addressed message ids
//!   ([`seen`]) remembers what crossed in either direction, so what came in
//!   is never sent back, and a message seen twice crosses once.
//!
//! [`export`] writes a log's envelopes in Streamr's storage-resend framing;
//! [`permissions`] checks that the verifier's authority and the streams'
//! on-chain PUBLISH grants agree.

pub mod config;
pub mod export;
pub mod inbound;
pub mod metrics;
pub mod mqtt;
pub mod outbound;
pub mod permissions;
pub mod seen;
pub mod sidecar;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use vouch_delegation::authority::Authority;
use vouch_net::ConnectionCaps;
use vouch_sdk::config::{TransportConfig, TransportKind};
use vouch_sdk::transport::Transport;
use vouch_sdk::transport::gossip::GossipTransport;

pub use config::{NetworkConfig, StreamrBridgeConfig};

use crate::http_server::{HttpServer, HttpServerError};
use metrics::BridgeMetrics;
use outbound::{Outbound, OutboundLink};
use seen::SeenSet;

/// How often the revocations log is read for new revocations.
const REVOCATION_POLL: Duration = Duration::from_millis(200);

/// Why the bridge could not start or stopped with an error. Messages are stable.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The authority view could not be loaded.
    #[error("authority: {0}")]
    Authority(String),
    /// The verifier log could not be read.
    #[error("log: {0}")]
    Log(String),
    /// The MQTT client failed.
    #[error("mqtt: {0}")]
    Mqtt(String),
    /// The Streamr sidecar's side of the bridge failed.
    #[error("streamr sidecar: {0}")]
    Sidecar(String),
    /// Gossip or HTTP networking failed.
    #[error("network: {0}")]
    Network(String),
    /// A file could not be read or written.
    #[error("i/o: {0}")]
    Io(String),
}

impl From<crate::store::LogError> for BridgeError {
    fn from(e: crate::store::LogError) -> Self {
        BridgeError::Log(e.to_string())
    }
}

/// What a started bridge announces (one JSON line on stdout).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Started {
    /// The HTTP API's base URL (`/metrics`, `/v1/bridge/stats`).
    pub http: String,
    /// The link: `streamr` (the network, through the sidecar) or `mqtt`.
    pub link: &'static str,
    /// The broker URL of the MQTT feed, if that is the link.
    pub mqtt: Option<String>,
    /// The log followed (outbound), if any.
    pub log: Option<String>,
    /// The stream ids (MQTT topic filters on the feed) subscribed to (inbound).
    pub streams: Vec<String>,
    /// The gossip peer id (inbound), if any.
    pub peer_id: Option<String>,
    /// Gossip listen addresses (inbound), each ending in `/p2p/<peer id>`.
    pub p2p_listen: Vec<String>,
}

/// Runs the Streamr bridge until `shutdown` resolves, calling `on_start` once
/// it listens (HTTP, and gossip when inbound). The sidecar joins the Streamr
/// network in the background (`/v1/bridge/stats` shows it).
pub async fn run_streamr(
    config: StreamrBridgeConfig,
    on_start: impl FnOnce(&Started),
    shutdown: impl Future<Output = ()>,
) -> Result<(), BridgeError> {
    let config = config.resolve()?;
    if config.log.is_none() && config.streams.is_empty() {
        return Err(BridgeError::Config(
            "nothing to bridge: give a log (outbound) and/or streams (inbound)".to_owned(),
        ));
    }
    let broker = config.broker()?;
    let launch = match broker {
        None => Some(sidecar::Launch::new(&config.network, &config.streams)?),
        Some(_) => None,
    };
    let inbound_on = !config.streams.is_empty();
    if inbound_on && config.bootstrap.is_empty() {
        return Err(BridgeError::Config(
            "inbound streams need at least one gossip bootstrap peer".to_owned(),
        ));
    }
    let seen = Arc::new(Mutex::new(SeenSet::new(config.seen_capacity)));
    let metrics = Arc::new(BridgeMetrics::new(Arc::clone(&seen)));

    // Inbound: authority, pipeline and gossip before anything connects.
    let mut refresher = None;
    let mut inbound_parts = None;
    let mut peer_id = None;
    let mut p2p_listen = Vec::new();
    if inbound_on {
        let (authority, handle) = crate::node::load_authority(&config.authority)
            .await
            .map_err(|e| BridgeError::Authority(format!("inbound streams: {e}")))?;
        refresher = handle;
        let authority: Arc<dyn Authority> = authority;
        let pipeline = crate::validate::Pipeline::new(config.validation.clone(), authority);
        let listen = if config.p2p_listen.is_empty() {
            vec!["/ip4/127.0.0.1/tcp/0".to_owned()]
        } else {
            config.p2p_listen.clone()
        };
        let transport = GossipTransport::start(&TransportConfig {
            kind: TransportKind::Gossip,
            path: None,
            listen,
            bootstrap: config.bootstrap.clone(),
        })
        .map_err(|e| BridgeError::Network(e.to_string()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while transport.listen_addrs().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        peer_id = Some(transport.peer_id());
        p2p_listen = transport.listen_addrs();
        inbound_parts = Some((pipeline, transport));
    }

    // HTTP: the inbound gossip transport's connection caps stay free.
    let gossip_fds = if inbound_on { ConnectionCaps::default().max_descriptors() } else { 0 };
    let server = HttpServer::bind(config.http_listen, &config.http_limits, gossip_fds)
        .await
        .map_err(|e| match e {
            HttpServerError::Bind { .. } => BridgeError::Network(e.to_string()),
            _ => BridgeError::Config(e.to_string()),
        })?;
    let http_addr = server.local_addr();
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let app = metrics::router(Arc::clone(&metrics), server.metrics());
    let http_task = tokio::spawn(server.serve(app, async move {
        let _ = http_stopped.await;
    }));

    let (in_tx, in_rx) = mpsc::channel::<inbound::Received>(config.inbound_queue.max(1));
    // Two stops: the outbound side (and the revocations follower) first,
    // the link after, so the outbound task never sees its link vanish.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (stop_link_tx, stop_link_rx) = watch::channel(false);
    // The co-located verifier's revocations, into the inbound pipeline.
    let revocations_log = config.revocations_log.clone().or_else(|| config.log.clone());
    let revocations_task = match revocations_log {
        Some(dir) if inbound_on => Some(tokio::spawn(inbound::follow_revocations(
            dir,
            REVOCATION_POLL,
            in_tx.clone(),
            stop_rx.clone(),
        ))),
        _ => None,
    };
    let in_tx = inbound_on.then_some(in_tx);
    let following = config.log.is_some() && config.cursor_path().is_some();
    let batch = config.outbound_batch.max(1);

    // The link: its driver (sidecar supervisor or MQTT event loop) and outbound half.
    let (driver, outbound_task): (JoinHandle<Result<(), BridgeError>>, _) = match (broker, launch) {
        (Some(broker), _) => {
            let (link, driver) =
                mqtt::start(&config, broker, following, in_tx, Arc::clone(&metrics));
            let driver = tokio::spawn(driver.run(stop_link_rx.clone()));
            (driver, link.map(|l| spawn_outbound(&config, l, &seen, &metrics, &stop_rx)))
        }
        (None, Some(launch)) => {
            let (link, supervisor) = sidecar::start(
                launch,
                config.network.queue,
                batch,
                following,
                in_tx,
                Arc::clone(&metrics),
            );
            let driver = tokio::spawn(supervisor.run(stop_link_rx.clone()));
            (driver, link.map(|l| spawn_outbound(&config, l, &seen, &metrics, &stop_rx)))
        }
        (None, None) => return Err(BridgeError::Config("no link configured".to_owned())),
    };
    let inbound_task = inbound_parts.map(|(pipeline, transport)| {
        let worker = inbound::Inbound {
            pipeline,
            transport,
            seen: Arc::clone(&seen),
            metrics: Arc::clone(&metrics),
        };
        tokio::task::spawn_blocking(move || worker.run(in_rx))
    });

    on_start(&Started {
        http: format!("http://{http_addr}"),
        link: if config.mqtt.is_some() { "mqtt" } else { "streamr" },
        mqtt: config.mqtt.clone(),
        log: config.log.as_ref().map(|p| p.display().to_string()),
        streams: config.streams.clone(),
        peer_id,
        p2p_listen,
    });

    // Until shutdown, or until the outbound task (a damaged log) or the
    // link's driver fails.
    tokio::pin!(shutdown);
    let mut outbound_task = outbound_task;
    let mut driver = Some(driver);
    let mut result = Ok(());
    tokio::select! {
        () = &mut shutdown => {}
        Some(done) = futures::future::OptionFuture::from(outbound_task.as_mut()), if outbound_task.is_some() => {
            outbound_task = None;
            result = joined(done, "outbound");
        }
        Some(done) = futures::future::OptionFuture::from(driver.as_mut()) => {
            driver = None;
            result = joined(done, "link");
        }
    }

    // Stop: outbound first (its cursor is durable per batch), then the
    // link, then inbound (its queue closes with the link).
    let _ = stop_tx.send(true);
    let mut stopping =
        [(outbound_task, "outbound"), (revocations_task, "revocations"), (driver, "link")];
    for (task, what) in &mut stopping {
        if *what == "link" {
            let _ = stop_link_tx.send(true);
        }
        if let Some(task) = task.take() {
            let done = joined(task.await, what);
            if result.is_ok() {
                result = done;
            }
        }
    }
    if let Some(task) = inbound_task
        && let Ok(mut transport) = task.await
    {
        let _ = transport.close(Instant::now() + Duration::from_secs(2));
    }
    let _ = http_stop.send(());
    let _ = http_task.await;
    if let Some(handle) = refresher {
        handle.abort();
    }
    result
}

fn spawn_outbound<L: OutboundLink + 'static>(
    config: &StreamrBridgeConfig,
    link: L,
    seen: &Arc<Mutex<SeenSet>>,
    metrics: &Arc<BridgeMetrics>,
    stop: &watch::Receiver<bool>,
) -> JoinHandle<Result<(), BridgeError>> {
    let task = Outbound {
        log: config.log.clone().unwrap_or_default(),
        cursor_path: config.cursor_path().unwrap_or_default(),
        batch: config.outbound_batch.max(1),
        poll: Duration::from_millis(config.poll_interval_ms.max(1)),
        link,
        seen: Arc::clone(seen),
        metrics: Arc::clone(metrics),
        shutdown: stop.clone(),
    };
    tokio::spawn(task.run())
}

fn joined(
    done: Result<Result<(), BridgeError>, tokio::task::JoinError>,
    what: &str,
) -> Result<(), BridgeError> {
    match done {
        Ok(r) => r,
        Err(e) => Err(BridgeError::Network(format!("{what} task failed: {e}"))),
    }
}

/// Random bytes for the default client id (uniqueness, not secrecy).
fn rand_fill(out: &mut [u8]) {
    let seed = blake3::hash(
        format!("{:?}{}", std::time::SystemTime::now(), std::process::id()).as_bytes(),
    );
    for (o, s) in out.iter_mut().zip(seed.as_bytes()) {
        *o = *s;
    }
}
