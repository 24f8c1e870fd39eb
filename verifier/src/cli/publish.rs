//! `vouch publish`: replay go-livepeer events through the SDK, or publish
//! already-signed envelopes unchanged.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use vouch_schema::Envelope;
use vouch_sdk::config::{TransportConfig, TransportKind};
use vouch_sdk::transport::gossip::{GossipOptions, GossipTransport};
use vouch_sdk::transport::{Outgoing, Transport, TransportError};
use vouch_sdk::{Publisher, PublisherConfig, adapter};

use super::{Exit, print_json, read_input};

/// Largest events file accepted (far more than a replay needs in one run).
const MAX_EVENTS_FILE: usize = 256 * 1024 * 1024;

#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// Publisher configuration (TOML; see examples/publisher.toml).
    #[arg(long, conflicts_with_all = ["key", "raw"])]
    config: Option<PathBuf>,
    /// The delegate's key file (instead of --config).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// The delegate's certificate (instead of --config).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Stream id (default: 0x<principal>/livepeer/telemetry).
    #[arg(long)]
    stream_id: Option<String>,
    /// Verifier or peer to publish to (repeatable); adds to the config's bootstrap list.
    #[arg(long)]
    bootstrap: Vec<String>,
    /// go-livepeer events, NDJSON of Kafka envelopes {id, type, timestamp, gateway, data}.
    #[arg(long, required_unless_present = "raw")]
    events: Option<PathBuf>,
    /// Already-signed envelope files to publish unchanged (CBOR, or Streamr hex).
    #[arg(long, num_args = 1.., conflicts_with = "events")]
    raw: Vec<PathBuf>,
    /// Gossip partition for raw files that do not decode as envelopes.
    #[arg(long, default_value_t = 0)]
    partition: u32,
    /// Publish the raw files on the control topic (revocations) instead of
    /// a telemetry topic.
    #[arg(long, requires = "raw", conflicts_with = "partition")]
    control: bool,
    /// How long to wait for everything to be delivered before giving up.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

pub(crate) fn run(a: PublishArgs) -> Result<Exit> {
    if !a.raw.is_empty() {
        return publish_raw(&a);
    }
    let mut config = match (&a.config, &a.key, &a.cert) {
        (Some(path), _, _) => PublisherConfig::from_file(path)?,
        (None, Some(key), Some(cert)) => PublisherConfig::new(key, cert),
        _ => bail!("give --config FILE, or --key FILE --cert FILE"),
    };
    if a.stream_id.is_some() {
        config.stream_id.clone_from(&a.stream_id);
    }
    config.transport.bootstrap.extend(a.bootstrap.iter().cloned());
    config.validate()?;
    let Some(events) = &a.events else { bail!("--events FILE is required") };

    let publisher = Publisher::new(&config)?;
    let (lines, rejected) = replay(&publisher, events)?;
    let flushed = publisher.flush(a.timeout);
    let stats = publisher.close(a.timeout)?;
    flushed?;
    print_json(&json!({"lines": lines, "rejected_lines": rejected, "stats": stats}));
    let lost = stats.dropped_queue_full + stats.dropped_transport + stats.transport_dropped;
    Ok(if rejected == 0 && lost == 0 { Exit::Ok } else { Exit::CheckFailed })
}

/// Feeds every NDJSON line to the publisher as go-livepeer would; counts
/// lines the adapter refuses (they are reported, not fatal).
fn replay(publisher: &Publisher, path: &Path) -> Result<(usize, usize)> {
    let bytes = read_input(path, MAX_EVENTS_FILE)?;
    let (mut lines, mut rejected) = (0, 0);
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        lines += 1;
        let event = match adapter::from_kafka_line(line) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{} line {}: {e}", path.display(), i + 1);
                rejected += 1;
                continue;
            }
        };
        // publish() never blocks; a full queue is counted in the stats.
        let _ = publisher.publish(event);
    }
    Ok((lines, rejected))
}

/// How long `--raw` waits before offering an envelope again to a full transport.
const FULL_RETRY: Duration = Duration::from_millis(2);

/// Publishes files' bytes as they are: captured-traffic replay and adversarial tests.
/// Unlike the SDK's caller, this command may wait: a full transport is
/// offered the envelope again until `--timeout`, and it exits with a failure
/// status if any envelope was lost on the way (the stats say where).
fn publish_raw(a: &PublishArgs) -> Result<Exit> {
    if a.bootstrap.is_empty() {
        bail!("--raw needs at least one --bootstrap peer");
    }
    let config = TransportConfig {
        kind: TransportKind::Gossip,
        path: None,
        listen: Vec::new(),
        bootstrap: a.bootstrap.clone(),
    };
    let deadline = Instant::now() + a.timeout;
    let options = GossipOptions::default();
    let room = options.pending_capacity;
    let mut transport = GossipTransport::start_with(&config, options)?;
    for path in &a.raw {
        let outgoing = raw_outgoing(path, a.partition)?;
        loop {
            // Wait rather than let the transport drop the oldest: a peer
            // that is not there yet, or behind, holds the rest back here.
            if transport.undelivered() >= room {
                if Instant::now() >= deadline {
                    bail!("no peer took the envelopes before --timeout ({})", path.display());
                }
                std::thread::sleep(FULL_RETRY);
                continue;
            }
            let sent = if a.control {
                transport.send_control(outgoing.bytes.clone())
            } else {
                transport.send(outgoing.clone())
            };
            match sent {
                Ok(()) => break,
                Err(TransportError::Full) if Instant::now() < deadline => {
                    std::thread::sleep(FULL_RETRY)
                }
                Err(TransportError::Full) => {
                    bail!("transport buffer still full at {} after --timeout", path.display())
                }
                Err(e) => return Err(e).with_context(|| format!("publishing {}", path.display())),
            }
        }
    }
    let flushed = transport.flush(deadline);
    let closed = transport.close(Instant::now() + Duration::from_secs(2));
    let stats = transport.stats();
    print_json(&json!({"files": a.raw.len(), "stats": stats}));
    flushed.context("not every envelope left for a peer")?;
    closed?;
    let lost = stats.dropped_pending + stats.queue_full + stats.send_failed + stats.unsent;
    Ok(if lost == 0 { Exit::Ok } else { Exit::CheckFailed })
}

/// A file's envelope bytes and partition. CBOR files go out byte for byte,
/// even when they do not decode (so verifiers can be tested with bad input);
/// Streamr hex is transcoded to the CBOR that gossip carries.
fn raw_outgoing(path: &Path, default_partition: u32) -> Result<Outgoing> {
    let bytes = read_input(path, 2 * vouch_schema::limits::MAX_ENVELOPE_BYTES)?;
    let trimmed = bytes.trim_ascii();
    if !trimmed.is_empty() && trimmed.iter().all(u8::is_ascii_hexdigit) {
        let env = super::envelope::read_envelope(path)?;
        return Ok(Outgoing { partition: env.id.partition, bytes: env.encode() });
    }
    let partition = Envelope::decode(&bytes).map_or(default_partition, |e| e.id.partition);
    Ok(Outgoing { partition, bytes })
}
