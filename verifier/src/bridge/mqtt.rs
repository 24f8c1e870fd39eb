//! The MQTT feed: a Streamr node's MQTT plugin (MQTT 3.1.1, QoS 1) instead
//! of the Streamr network.
//!
//! A convenience feed, not the Streamr bridge proper: the plugin publishes
//! what it receives with `streamrClient.publish`, so on Streamr the message
//! is re-signed by the node's own key and the publisher's signature only
//! rides inside the content, a [`BridgePayload`] JSON object no Streamr
//! subscriber checks. Outbound publishes each envelope to the topic named by
//! its stream id and counts the broker's acknowledgements; inbound hands
//! every message of the subscribed topics to the validation worker.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, watch};
use vouch_schema::bridge::{BridgePayload, MAX_BRIDGE_PAYLOAD_BYTES};

use super::metrics::BridgeMetrics;
use super::outbound::OutboundLink;
use super::{BridgeError, StreamrBridgeConfig, inbound};

/// Largest MQTT packet accepted: Streamr's `maxMessageSize` (1 MiB) plus headers.
const MAX_MQTT_PACKET_IN: usize = (1 << 20) + 1024;

/// How long to wait for a batch's acknowledgements before publishing it again.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// What the MQTT event loop tells the outbound side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkEvent {
    /// A (new) session with the broker is up.
    Connected,
    /// The broker acknowledged one of our QoS 1 publishes.
    Acked,
    /// The connection failed; unacknowledged publishes are lost.
    Disconnected,
}

/// The outbound half: publishes and counts acknowledgements.
pub(crate) struct MqttOutbound {
    client: AsyncClient,
    link: mpsc::Receiver<LinkEvent>,
    connected: bool,
    metrics: Arc<BridgeMetrics>,
}

/// The event loop that must be polled for anything to move.
pub(crate) struct MqttDriver {
    client: AsyncClient,
    eventloop: EventLoop,
    streams: Vec<String>,
    link: Option<mpsc::Sender<LinkEvent>>,
    inbound: Option<mpsc::Sender<inbound::Received>>,
    metrics: Arc<BridgeMetrics>,
}

/// Connects (lazily: the event loop dials) to the configured broker.
pub(crate) fn start(
    config: &StreamrBridgeConfig,
    (host, port): (String, u16),
    outbound: bool,
    inbound: Option<mpsc::Sender<inbound::Received>>,
    metrics: Arc<BridgeMetrics>,
) -> (Option<MqttOutbound>, MqttDriver) {
    let client_id = config.client_id.clone().unwrap_or_else(|| {
        let mut bytes = [0u8; 6];
        super::rand_fill(&mut bytes);
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
    let outbound = outbound.then(|| MqttOutbound {
        client: client.clone(),
        link: link_rx,
        connected: false,
        metrics: Arc::clone(&metrics),
    });
    let driver = MqttDriver {
        client,
        eventloop,
        streams: config.streams.clone(),
        link: outbound.is_some().then_some(link_tx),
        inbound,
        metrics,
    };
    (outbound, driver)
}

impl MqttDriver {
    /// Polls the event loop until `stop` turns true or the inbound worker is
    /// gone: subscribes on every (re)connection, hands publishes to the
    /// inbound worker, acknowledgements and disconnects to the outbound side.
    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), BridgeError> {
        loop {
            let event = tokio::select! {
                _ = stop.changed() => break,
                event = self.eventloop.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    self.metrics.mqtt_connects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(?ack, "connected to the broker");
                    for topic in &self.streams {
                        if let Err(e) = self.client.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                            tracing::error!(%e, topic, "cannot subscribe");
                        }
                    }
                    self.tell(LinkEvent::Connected);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Some(tx) = &self.inbound {
                        let msg =
                            inbound::Received::Mqtt { topic: p.topic, payload: p.payload.to_vec() };
                        if tx.send(msg).await.is_err() {
                            return Err(BridgeError::Mqtt("inbound worker stopped".into()));
                        }
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    if let Some(tx) = &self.link
                        && tx.try_send(LinkEvent::Acked).is_err()
                    {
                        tracing::warn!("acknowledgement not delivered to the outbound task");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                    {
                        tracing::error!(?ack, "the broker refused a subscription");
                    } else {
                        tracing::info!(?ack, "subscribed");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    self.metrics.mqtt_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%e, "MQTT connection error; reconnecting");
                    self.tell(LinkEvent::Disconnected);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        let _ = self.client.try_disconnect();
        Ok(())
    }

    fn tell(&self, event: LinkEvent) {
        if let Some(tx) = &self.link {
            let _ = tx.try_send(event);
        }
    }
}

impl MqttOutbound {
    fn track(&mut self, event: Option<LinkEvent>) -> Result<(), BridgeError> {
        match event {
            Some(LinkEvent::Connected) => self.connected = true,
            Some(LinkEvent::Disconnected) => self.connected = false,
            Some(LinkEvent::Acked) => {}
            None => return Err(BridgeError::Mqtt("event loop stopped".into())),
        }
        Ok(())
    }
}

impl OutboundLink for MqttOutbound {
    /// Publishes the batch with QoS 1 and counts the broker's
    /// acknowledgements, publishing it all again after a reconnect.
    async fn send_confirmed(
        &mut self,
        batch: &[BridgePayload],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool, BridgeError> {
        let mut first = true;
        loop {
            while !self.connected {
                tokio::select! {
                    _ = shutdown.changed() => return Ok(false),
                    event = self.link.recv() => self.track(event)?,
                }
            }
            if !first {
                self.metrics.outbound_resent_batches.fetch_add(1, Ordering::Relaxed);
            }
            first = false;
            for p in batch {
                self.client
                    .publish(p.envelope.id.stream_id.clone(), QoS::AtLeastOnce, false, p.encode())
                    .await
                    .map_err(|e| BridgeError::Mqtt(e.to_string()))?;
            }
            let mut acked = 0usize;
            let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
            while acked < batch.len() && self.connected {
                tokio::select! {
                    _ = shutdown.changed() => return Ok(false),
                    () = tokio::time::sleep_until(deadline) => {
                        tracing::warn!(acked, total = batch.len(), "broker acknowledgements timed out; publishing the batch again");
                        break;
                    }
                    event = self.link.recv() => match event {
                        Some(LinkEvent::Acked) => acked += 1,
                        other => self.track(other)?,
                    },
                }
            }
            if acked >= batch.len() {
                return Ok(true);
            }
        }
    }

    async fn idle(
        &mut self,
        poll: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool, BridgeError> {
        tokio::select! {
            _ = shutdown.changed() => Ok(false),
            () = tokio::time::sleep(poll) => Ok(true),
            event = self.link.recv() => self.track(event).map(|()| true),
        }
    }
}
