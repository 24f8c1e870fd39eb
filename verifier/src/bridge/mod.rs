//! Bridges from the verifier to other networks (DESIGN.md §11).
//!
//! The Streamr bridge ([`run_streamr`]) is a standalone process beside a
//! verifier and a Streamr node's MQTT plugin:
//!
//! - **outbound** ([`outbound`]): follows the verifier's durable log and
//!   publishes every accepted envelope to MQTT (topic = its stream id) as a
//!   [`vouch_schema::bridge::BridgePayload`] JSON object carrying the
//!   publisher's own signed message (CBOR and Streamr protobuf), since the
//!   Streamr node re-signs the outer message with its own key;
//! - **inbound** ([`inbound`]): subscribes to stream ids on MQTT, validates
//!   the embedded envelopes with the same pipeline as gossip, and gossips the
//!   accepted ones to verifiers;
//! - **no loops**: a bounded set of content-addressed message ids
//!   ([`seen`]) remembers what crossed in either direction, so what came in
//!   from MQTT is never sent back, and a message seen twice crosses once.
//!
//! [`export`] writes a log's envelopes in Streamr's storage-resend framing.

pub mod config;
pub mod export;
pub mod inbound;
pub mod metrics;
pub mod outbound;
pub mod seen;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, watch};
use vouch_delegation::authority::Authority;
use vouch_net::ConnectionCaps;
use vouch_schema::bridge::MAX_BRIDGE_PAYLOAD_BYTES;
use vouch_sdk::config::{TransportConfig, TransportKind};
use vouch_sdk::transport::Transport;
use vouch_sdk::transport::gossip::GossipTransport;

pub use config::StreamrBridgeConfig;

use crate::http_server::{HttpServer, HttpServerError};
use metrics::BridgeMetrics;
use outbound::LinkEvent;
use seen::SeenSet;

/// Largest MQTT packet accepted: Streamr's `maxMessageSize` (1 MiB) plus headers.
const MAX_MQTT_PACKET_IN: usize = (1 << 20) + 1024;

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
    /// The broker URL.
    pub mqtt: String,
    /// The log followed (outbound), if any.
    pub log: Option<String>,
    /// The MQTT topic filters subscribed to (inbound).
    pub streams: Vec<String>,
    /// The gossip peer id (inbound), if any.
    pub peer_id: Option<String>,
    /// Gossip listen addresses (inbound), each ending in `/p2p/<peer id>`.
    pub p2p_listen: Vec<String>,
}

/// Runs the Streamr bridge until `shutdown` resolves, calling `on_start` once
/// it listens (HTTP, and gossip when inbound).
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
    let (host, port) = config.broker()?;
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

    // MQTT.
    let client_id = config.client_id.clone().unwrap_or_else(|| {
        let mut bytes = [0u8; 6];
        rand_fill(&mut bytes);
        format!("vouch-bridge-{}", hex::encode(bytes))
    });
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(true);
    // Incoming up to Streamr's own 1 MiB message limit, so an oversize
    // payload is decoded, refused and counted (`payload_oversize`) rather
    // than tearing down the connection; outgoing what we can produce.
    options.set_max_packet_size(MAX_MQTT_PACKET_IN, MAX_BRIDGE_PAYLOAD_BYTES + 1024);
    if let Some(password) = &config.password {
        options.set_credentials(config.username.clone().unwrap_or_default(), password.clone());
    }
    let batch = config.outbound_batch.max(1);
    // Room for a whole outbound batch plus the subscriptions: publishing
    // never waits on the event loop, which never waits on the publisher.
    let (client, mut eventloop) = AsyncClient::new(options, batch + config.streams.len() + 16);
    // One small message at a time must not wait for Nagle's algorithm.
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let (link_tx, link_rx) = mpsc::channel::<LinkEvent>(2 * batch + 64);
    let (in_tx, in_rx) = mpsc::channel::<inbound::Received>(config.inbound_queue.max(1));
    let (stop_tx, stop_rx) = watch::channel(false);

    let outbound_task = match (&config.log, config.cursor_path()) {
        (Some(log), Some(cursor_path)) => {
            let task = outbound::Outbound {
                log: log.clone(),
                cursor_path,
                batch,
                poll: Duration::from_millis(config.poll_interval_ms.max(1)),
                client: client.clone(),
                link: link_rx,
                seen: Arc::clone(&seen),
                metrics: Arc::clone(&metrics),
                shutdown: stop_rx.clone(),
            };
            Some(tokio::spawn(task.run()))
        }
        _ => None,
    };
    let outbound_on = outbound_task.is_some();
    let mut outbound_task = outbound_task;
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
        mqtt: config.mqtt.clone(),
        log: config.log.as_ref().map(|p| p.display().to_string()),
        streams: config.streams.clone(),
        peer_id,
        p2p_listen,
    });

    // The MQTT event loop: must be polled for anything to move.
    tokio::pin!(shutdown);
    let mut result = Ok(());
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // The outbound task only returns early on a fatal error (a damaged log).
            Some(done) = futures::future::OptionFuture::from(outbound_task.as_mut()), if outbound_task.is_some() => {
                outbound_task = None;
                result = match done {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(BridgeError::Log(format!("outbound task failed: {e}"))),
                };
                break;
            }
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    metrics.mqtt_connects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(?ack, "connected to the broker");
                    for topic in &config.streams {
                        if let Err(e) = client.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                            tracing::error!(%e, topic, "cannot subscribe");
                        }
                    }
                    if outbound_on {
                        let _ = link_tx.try_send(LinkEvent::Connected);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if inbound_on {
                        let msg = inbound::Received { topic: p.topic, payload: p.payload.to_vec() };
                        if in_tx.send(msg).await.is_err() {
                            result = Err(BridgeError::Mqtt("inbound worker stopped".into()));
                            break;
                        }
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    if outbound_on && link_tx.try_send(LinkEvent::Acked).is_err() {
                        tracing::warn!("acknowledgement not delivered to the outbound task");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                        tracing::error!(?ack, "the broker refused a subscription");
                    } else {
                        tracing::info!(?ack, "subscribed");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    metrics.mqtt_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%e, "MQTT connection error; reconnecting");
                    if outbound_on {
                        let _ = link_tx.try_send(LinkEvent::Disconnected);
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
        }
    }

    // Stop: outbound first (its cursor is durable per batch), then inbound.
    let _ = stop_tx.send(true);
    if let Some(task) = outbound_task {
        match task.await {
            Ok(Err(e)) if result.is_ok() => result = Err(e),
            Ok(_) => {}
            Err(e) => tracing::error!(%e, "outbound task failed"),
        }
    }
    drop(in_tx);
    if let Some(task) = inbound_task
        && let Ok(mut transport) = task.await
    {
        let _ = transport.close(Instant::now() + Duration::from_secs(2));
    }
    let _ = client.try_disconnect();
    let _ = http_stop.send(());
    let _ = http_task.await;
    if let Some(handle) = refresher {
        handle.abort();
    }
    result
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
