//! The Streamr network through the sidecar: a small Node process running
//! Streamr's own SDK (`interop/streamr-sidecar/sidecar.mjs`), supervised here.
//!
//! The bridge keeps every decision: what leaves (the log), when the cursor
//! moves, what enters (the validation pipeline). The sidecar only injects
//! each envelope's `StreamMessage` unchanged (`publishRaw`: the publisher's
//! own signature, no re-signing; the sidecar holds no key) and hands back
//! the raw messages of the subscribed stream parts. They talk in JSON lines
//! over the sidecar's stdin and stdout (its logs go to stderr).
//!
//! - **Supervised** ([`Supervisor`]): started, pinged every
//!   `health_interval_ms`, killed when silent for `health_timeout_ms` or when
//!   it does not join the network within `start_timeout_ms`, and restarted
//!   with exponential backoff (`restart_backoff_ms` doubling up to
//!   `restart_backoff_max_ms`, back to the start after a minute of health).
//! - **Bounded**: publishes wait in a queue of `queue` entries toward it (the
//!   log is read no faster beyond); inbound messages go to the validation
//!   queue without waiting, and those it cannot take are dropped and counted,
//!   as the sidecar counts what its own output buffer (`max_out_bytes`)
//!   cannot take; a line from it is at most [`MAX_LINE_BYTES`].
//! - **At least once** ([`SidecarOutbound`]): a publish counts only when the
//!   sidecar confirms it, i.e. its node handed the message to at least
//!   `min_neighbors` neighbors of the stream part (Streamr itself has no
//!   end-to-end acknowledgement). A failed publish is sent again after a
//!   pause, and everything unconfirmed when a sidecar dies is sent again to
//!   the next one.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use vouch_schema::bridge::BridgePayload;

use super::config::NetworkConfig;
use super::metrics::BridgeMetrics;
use super::outbound::OutboundLink;
use super::{BridgeError, inbound};

/// Longest line accepted from the sidecar: a Streamr message of its 1 MiB
/// limit, in base64, inside its JSON line.
pub const MAX_LINE_BYTES: usize = 2 << 20;

/// A sidecar that ran healthy this long restarts, if it dies, without waiting.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// How long a stopping sidecar may take to leave the network before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Pause before a publish the sidecar failed is sent again.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// One publish toward the sidecar: a StreamMessage protobuf under an id.
#[derive(Debug)]
pub(crate) struct Publish {
    id: u64,
    message: Vec<u8>,
}

/// What the supervisor reports about publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Confirm {
    /// Handed to the network.
    Published(u64),
    /// Not handed to the network; `retry` when sending it again may work.
    Failed {
        /// The publish.
        id: u64,
        /// Whether it may succeed later (no neighbors yet), or never will.
        retry: bool,
        /// The sidecar's reason.
        error: String,
    },
    /// The sidecar stopped: every publish written to it and unconfirmed is lost.
    Lost,
}

/// Everything one sidecar process needs, resolved from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    node: PathBuf,
    node_args: Vec<String>,
    script: PathBuf,
    start: Value,
    health_interval: Duration,
    health_timeout: Duration,
    start_timeout: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
}

impl Launch {
    /// The launch of `config`'s sidecar, subscribed to every `streams` × partition.
    pub(crate) fn new(config: &NetworkConfig, streams: &[String]) -> Result<Launch, BridgeError> {
        let script = config.sidecar_path()?;
        if !script.is_file() {
            return Err(BridgeError::Config(format!(
                "sidecar script {} does not exist",
                script.display()
            )));
        }
        if let Some(bad) = streams.iter().find(|s| s.contains(['+', '#'])) {
            return Err(BridgeError::Config(format!(
                "stream {bad:?}: Streamr has no wildcards (they are for the MQTT feed)"
            )));
        }
        if let Some(p) =
            config.partitions.iter().find(|p| **p >= vouch_schema::limits::MAX_PARTITIONS)
        {
            return Err(BridgeError::Config(format!("partition {p} is out of range 0-99")));
        }
        let subscribe: Vec<Value> = streams
            .iter()
            .flat_map(|s| {
                config.partitions.iter().map(move |p| json!({"stream": s, "partition": p}))
            })
            .collect();
        let start = json!({
            "type": "start",
            "client": config.client_config()?,
            "fixed_peer": config.fixed_peer,
            "subscribe": subscribe,
            "min_neighbors": config.min_neighbors,
            "confirm_timeout_ms": config.confirm_timeout_ms,
            "max_out_bytes": config.max_out_bytes,
        });
        let ms = Duration::from_millis;
        Ok(Launch {
            node: config.node.clone(),
            node_args: config.node_args.clone(),
            script,
            start,
            health_interval: ms(config.health_interval_ms.max(10)),
            health_timeout: ms(config.health_timeout_ms.max(config.health_interval_ms).max(10)),
            start_timeout: ms(config.start_timeout_ms.max(10)),
            backoff_min: ms(config.restart_backoff_ms.max(1)),
            backoff_max: ms(config.restart_backoff_max_ms.max(config.restart_backoff_ms).max(1)),
        })
    }
}

/// The outbound half: ids, confirmations and resends.
pub(crate) struct SidecarOutbound {
    publishes: mpsc::Sender<Publish>,
    confirms: mpsc::Receiver<Confirm>,
    next_id: u64,
    metrics: Arc<BridgeMetrics>,
}

/// Starts and restarts the sidecar; relays publishes, confirmations and
/// inbound messages.
pub(crate) struct Supervisor {
    launch: Launch,
    publishes: Option<mpsc::Receiver<Publish>>,
    confirms: Option<mpsc::Sender<Confirm>>,
    inbound: Option<mpsc::Sender<inbound::Received>>,
    metrics: Arc<BridgeMetrics>,
}

/// Wires a supervisor and, when the bridge follows a log, its outbound half.
/// `batch` is the outbound batch size (the confirmations' channel holds a
/// batch and the queue).
pub(crate) fn start(
    launch: Launch,
    queue: usize,
    batch: usize,
    outbound: bool,
    inbound: Option<mpsc::Sender<inbound::Received>>,
    metrics: Arc<BridgeMetrics>,
) -> (Option<SidecarOutbound>, Supervisor) {
    let queue = queue.max(1);
    metrics.sidecar_queue_capacity.store(queue as u64, Ordering::Relaxed);
    let (publish_tx, publish_rx) = mpsc::channel(queue);
    let (confirm_tx, confirm_rx) = mpsc::channel(queue + batch.max(1) + 16);
    let link = outbound.then(|| SidecarOutbound {
        publishes: publish_tx,
        confirms: confirm_rx,
        next_id: 0,
        metrics: Arc::clone(&metrics),
    });
    let supervisor = Supervisor {
        launch,
        publishes: outbound.then_some(publish_rx),
        confirms: outbound.then_some(confirm_tx),
        inbound,
        metrics,
    };
    (link, supervisor)
}

/// Why one sidecar process ended.
#[derive(Debug, thiserror::Error)]
enum Ended {
    /// The bridge is stopping.
    #[error("stopped")]
    Stopped,
    /// It could not be started at all.
    #[error("could not start: {0}")]
    Spawn(String),
    /// It exited (or closed its stdout).
    #[error("exited: {0}")]
    Exited(String),
    /// It missed its health checks and was killed.
    #[error("missed its health checks")]
    Unhealthy,
    /// It did not join the network in time and was killed.
    #[error("did not join the network in time")]
    StartTimeout,
}

impl Supervisor {
    /// Runs sidecars one after another until `stop` turns true. Only a
    /// stopped outbound side (a programming error) ends it with an error.
    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), BridgeError> {
        let mut backoff = self.launch.backoff_min;
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let started = Instant::now();
            let ended = self.run_once(&mut stop).await;
            self.metrics.sidecar_up.store(0, Ordering::Relaxed);
            self.metrics.sidecar_in_flight.store(0, Ordering::Relaxed);
            *self.metrics.sidecar_node_id.lock().unwrap_or_else(|p| p.into_inner()) = None;
            if let Some(confirms) = &self.confirms
                && confirms.send(Confirm::Lost).await.is_err()
            {
                return Err(BridgeError::Sidecar("the outbound task stopped".to_owned()));
            }
            match ended {
                Ended::Stopped => return Ok(()),
                Ended::Unhealthy => {
                    self.metrics.sidecar_unhealthy.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("the Streamr sidecar missed its health checks; restarting it");
                }
                other => {
                    tracing::warn!(reason = %other, ?backoff, "the Streamr sidecar stopped; restarting it")
                }
            }
            self.metrics.sidecar_restarts.fetch_add(1, Ordering::Relaxed);
            if started.elapsed() >= HEALTHY_RUN {
                backoff = self.launch.backoff_min;
            }
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.launch.backoff_max);
        }
    }

    async fn run_once(&mut self, stop: &mut watch::Receiver<bool>) -> Ended {
        let spawned = Command::new(&self.launch.node)
            .args(&self.launch.node_args)
            .arg(&self.launch.script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => return Ended::Spawn(format!("{}: {e}", self.launch.node.display())),
        };
        self.metrics.sidecar_starts.fetch_add(1, Ordering::Relaxed);
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Ended::Spawn("no stdin/stdout pipes".to_owned());
        };
        let mut writer = BufWriter::new(stdin);
        let mut reader = LineReader::new(BufReader::new(stdout), MAX_LINE_BYTES);
        if let Err(e) = write_line(&mut writer, &self.launch.start.to_string()).await {
            return Ended::Exited(format!("writing the start line: {e}"));
        }
        let mut session = Session { ready: false, last_heard: Instant::now(), dropped_seen: 0 };
        let ready_by = Instant::now() + self.launch.start_timeout;
        let mut health = tokio::time::interval(self.launch.health_interval);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ping = 0u64;
        loop {
            let publishes = self.publishes.as_mut().filter(|_| session.ready);
            tokio::select! {
                _ = stop.changed() => {
                    drop(writer); // end of stdin: the sidecar leaves the network and exits
                    if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
                        let _ = child.kill().await;
                    }
                    return Ended::Stopped;
                }
                read = reader.next() => match read {
                    Ok(None) => return exited(&mut child).await,
                    Ok(Some(line)) => {
                        session.last_heard = Instant::now();
                        self.on_line(&line, &mut session).await;
                    }
                    Err(e) => return Ended::Exited(format!("reading its output: {e}")),
                },
                Some(p) = recv(publishes) => {
                    self.metrics.sidecar_queued.fetch_sub(1, Ordering::Relaxed);
                    let text = format!(
                        "{{\"type\":\"publish\",\"id\":{},\"msg\":\"{}\"}}",
                        p.id,
                        BASE64.encode(&p.message)
                    );
                    if let Err(e) = write_line(&mut writer, &text).await {
                        return Ended::Exited(format!("writing a publish: {e}"));
                    }
                    self.metrics.sidecar_in_flight.fetch_add(1, Ordering::Relaxed);
                }
                _ = health.tick() => {
                    if !session.ready && Instant::now() > ready_by {
                        let _ = child.kill().await;
                        return Ended::StartTimeout;
                    }
                    if session.ready && session.last_heard.elapsed() > self.launch.health_timeout {
                        let _ = child.kill().await;
                        return Ended::Unhealthy;
                    }
                    ping += 1;
                    if let Err(e) = write_line(&mut writer, &format!("{{\"type\":\"ping\",\"id\":{ping}}}")).await {
                        return Ended::Exited(format!("writing a ping: {e}"));
                    }
                }
            }
        }
    }

    /// One protocol line from the sidecar.
    async fn on_line(&mut self, line: &[u8], session: &mut Session) {
        let Ok(msg) = serde_json::from_slice::<Value>(line) else {
            self.metrics.sidecar_protocol_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(line = %String::from_utf8_lossy(&line[..line.len().min(200)]), "not a sidecar protocol line");
            return;
        };
        let id = msg["id"].as_u64();
        match (msg["type"].as_str(), id) {
            (Some("ready"), _) => {
                session.ready = true;
                self.metrics.sidecar_up.store(1, Ordering::Relaxed);
                let node_id = msg["node_id"].as_str().map(str::to_owned);
                tracing::info!(?node_id, websocket = %msg["websocket"], "the Streamr sidecar joined the network");
                *self.metrics.sidecar_node_id.lock().unwrap_or_else(|p| p.into_inner()) = node_id;
            }
            (Some("published"), Some(id)) => self.confirm(Confirm::Published(id)).await,
            (Some("failed"), Some(id)) => {
                let error = msg["error"].as_str().unwrap_or_default().to_owned();
                let retry = msg["retry"].as_bool().unwrap_or(true);
                self.confirm(Confirm::Failed { id, retry, error }).await;
            }
            (Some("pong"), _) => {
                // The sidecar's own drop count, since it started.
                let dropped = msg["stats"]["dropped_inbound"].as_u64().unwrap_or(0);
                let new = dropped.saturating_sub(session.dropped_seen);
                session.dropped_seen = session.dropped_seen.max(dropped);
                self.metrics.sidecar_dropped_inbound.fetch_add(new, Ordering::Relaxed);
            }
            (Some("message"), _) => self.on_message(&msg),
            (Some("error"), _) => {
                tracing::error!(error = %msg["error"], "the Streamr sidecar failed")
            }
            _ => {
                self.metrics.sidecar_protocol_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%msg, "unknown sidecar message");
            }
        }
    }

    async fn confirm(&mut self, confirm: Confirm) {
        let _ = self.metrics.sidecar_in_flight.fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |n| Some(n.saturating_sub(1)),
        );
        if let Some(confirms) = &self.confirms {
            // The outbound side drains confirmations whenever it waits, so
            // this waits at most for it to come back to the channel.
            let _ = confirms.send(confirm).await;
        }
    }

    fn on_message(&self, msg: &Value) {
        let Some(tx) = &self.inbound else { return };
        let (Some(stream), Some(partition), Some(Ok(message))) = (
            msg["stream"].as_str(),
            msg["partition"].as_u64().and_then(|p| u32::try_from(p).ok()),
            msg["msg"].as_str().map(|b| BASE64.decode(b)),
        ) else {
            self.metrics.sidecar_protocol_errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let received = inbound::Received::Streamr { stream: stream.to_owned(), partition, message };
        // Never wait: the sidecar's output (health answers included) must
        // keep flowing. What the full queue cannot take is counted.
        if tx.try_send(received).is_err() {
            self.metrics.inbound_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One sidecar process's state.
struct Session {
    ready: bool,
    last_heard: Instant,
    dropped_seen: u64,
}

async fn recv(rx: Option<&mut mpsc::Receiver<Publish>>) -> Option<Publish> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn exited(child: &mut Child) -> Ended {
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(Ok(status)) => Ended::Exited(status.to_string()),
        Ok(Err(e)) => Ended::Exited(e.to_string()),
        Err(_) => {
            let _ = child.kill().await;
            Ended::Exited("closed its output".to_owned())
        }
    }
}

async fn write_line(writer: &mut BufWriter<ChildStdin>, line: &str) -> std::io::Result<()> {
    writer.write_all(line.as_bytes()).await?;
    writer.write_all(b"\n").await?;
    writer.flush().await
}

/// Lines of a reader, each at most `max` bytes: a longer line is skipped
/// whole and comes back empty. Cancel-safe: a line read partly when the
/// future is dropped is completed by the next call.
pub(crate) struct LineReader<R> {
    reader: R,
    buf: Vec<u8>,
    overlong: bool,
    max: usize,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Lines of `reader`, bounded by `max` bytes.
    pub(crate) fn new(reader: R, max: usize) -> LineReader<R> {
        LineReader { reader, buf: Vec::new(), overlong: false, max }
    }

    /// The next line without its newline; `None` at the end of input (a
    /// last line without a newline included).
    pub(crate) async fn next(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            // The only await: nothing is consumed before it returns.
            let chunk = self.reader.fill_buf().await?;
            if chunk.is_empty() {
                if self.buf.is_empty() && !self.overlong {
                    return Ok(None);
                }
                self.overlong = false;
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
            let newline = chunk.iter().position(|b| *b == b'\n');
            let content = &chunk[..newline.unwrap_or(chunk.len())];
            if !self.overlong && self.buf.len() + content.len() <= self.max {
                self.buf.extend_from_slice(content);
            } else {
                self.overlong = true;
                self.buf.clear();
            }
            let taken = newline.map_or(chunk.len(), |i| i + 1);
            self.reader.consume(taken);
            if newline.is_some() {
                self.overlong = false;
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
        }
    }
}

impl Batch {
    /// Applies one confirmation to the batch.
    fn handle(
        &mut self,
        confirm: Option<Confirm>,
        metrics: &BridgeMetrics,
    ) -> Result<(), BridgeError> {
        let state = self;
        match confirm {
            None => return Err(BridgeError::Sidecar("the sidecar supervisor stopped".to_owned())),
            Some(Confirm::Published(id)) => {
                if let Some(i) = state.pending.remove(&id) {
                    state.confirm(i);
                }
            }
            Some(Confirm::Failed { id, retry, error }) => {
                let Some(i) = state.pending.remove(&id) else { return Ok(()) };
                if retry {
                    tracing::debug!(%error, "the sidecar could not publish yet; sending again");
                    metrics.outbound_retried.fetch_add(1, Ordering::Relaxed);
                    state.again.insert(i);
                    state.pause_until = Some(Instant::now() + RETRY_PAUSE);
                } else {
                    tracing::error!(%error, "the sidecar refused an envelope for good; skipping it");
                    metrics.outbound_refused.fetch_add(1, Ordering::Relaxed);
                    state.confirm(i);
                }
            }
            Some(Confirm::Lost) => {
                let lost = state.pending.len();
                metrics.outbound_retried.fetch_add(lost as u64, Ordering::Relaxed);
                state.again.extend(state.pending.drain().map(|(_, i)| i));
            }
        }
        Ok(())
    }
}

/// One batch on its way: which messages are confirmed, which wait.
struct Batch {
    /// Publish id → index in the batch.
    pending: HashMap<u64, usize>,
    /// Indices to send (first time or again): always the lowest first, so
    /// what goes again keeps its chain order (Streamr subscribers that order
    /// messages drop one older than what they already have).
    again: BTreeSet<usize>,
    confirmed: Vec<bool>,
    left: usize,
    pause_until: Option<Instant>,
}

impl Batch {
    fn confirm(&mut self, i: usize) {
        if !self.confirmed[i] {
            self.confirmed[i] = true;
            self.left -= 1;
        }
    }
}

impl OutboundLink for SidecarOutbound {
    async fn send_confirmed(
        &mut self,
        batch: &[BridgePayload],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool, BridgeError> {
        let mut state = Batch {
            pending: HashMap::new(),
            again: (0..batch.len()).collect(),
            confirmed: vec![false; batch.len()],
            left: batch.len(),
            pause_until: None,
        };
        let SidecarOutbound { publishes, confirms, next_id, metrics } = self;
        while state.left > 0 {
            let paused = state.pause_until.is_some_and(|t| t > Instant::now());
            let sending = !state.again.is_empty() && !paused;
            tokio::select! {
                biased;
                _ = shutdown.changed() => return Ok(false),
                confirm = confirms.recv() => state.handle(confirm, metrics)?,
                permit = publishes.reserve(), if sending => {
                    let permit = permit.map_err(|_| BridgeError::Sidecar("the sidecar supervisor stopped".to_owned()))?;
                    let Some(i) = state.again.pop_first() else { continue };
                    if state.confirmed[i] {
                        continue;
                    }
                    *next_id += 1;
                    state.pending.insert(*next_id, i);
                    metrics.sidecar_queued.fetch_add(1, Ordering::Relaxed);
                    permit.send(Publish { id: *next_id, message: batch[i].envelope.to_streamr_bytes() });
                }
                () = sleep_until(state.pause_until), if paused => state.pause_until = None,
            }
        }
        Ok(true)
    }

    async fn idle(
        &mut self,
        poll: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool, BridgeError> {
        let deadline = Instant::now() + poll;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return Ok(false),
                () = tokio::time::sleep_until(deadline) => return Ok(true),
                // Late confirmations of a finished batch: nothing waits for them.
                confirm = self.confirms.recv() => if confirm.is_none() {
                    return Err(BridgeError::Sidecar("the sidecar supervisor stopped".to_owned()));
                },
            }
        }
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded() {
        let input = b"{\"a\":1}\nxxxxxxxxxxxxxxxxxxxxxxxx\n\nlast".to_vec();
        let mut lines = LineReader::new(BufReader::with_capacity(4, input.as_slice()), 10);
        assert_eq!(lines.next().await.unwrap().unwrap(), b"{\"a\":1}");
        assert!(
            lines.next().await.unwrap().unwrap().is_empty(),
            "an overlong line comes back empty"
        );
        assert!(lines.next().await.unwrap().unwrap().is_empty());
        assert_eq!(lines.next().await.unwrap().unwrap(), b"last");
        assert_eq!(lines.next().await.unwrap(), None);
    }
}
