//! `vouch subscribe`: a plain libp2p gossip subscriber that checks every
//! envelope it receives and prints one NDJSON line per message.
//!
//! It is the receiving end of the SDK's end-to-end tests and a debugging
//! tool for live networks. It runs the verifier node's gossip
//! ([`vouch_net::GossipNode`], DESIGN.md §5): nothing is forwarded before our
//! check, anonymous validation mode, content-addressed message ids, no flood
//! publishing, and peer scoring that penalizes senders of rejected messages;
//! unlike the node it does not follow the control topic. The check here
//! is the envelope's structure and signature only; certificates, authority,
//! rate limits and sequence belong to the verifier pipeline (DESIGN.md §6).
//!
//! Output: the first stdout line is `{"peer_id": …, "listen": [multiaddr/p2p/peer…]}`;
//! then one line per message:
//! `{"ok", "publisher", "msg_chain_id", "timestamp", "seq", "prev", "partition", "topic", "bytes", "error"?}`.
//! Exit status: 0 after `--count` messages that all verified, 1 when one did
//! not or `--timeout` passed first, 2 on usage or network setup errors.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use libp2p::gossipsub::{MessageAcceptance, TopicHash};
use libp2p::{Multiaddr, identity};
use serde_json::{Value, json};
use vouch_net::{ConnectionCaps, GossipNode, Inbound, Partitions};
use vouch_schema::{Envelope, topic};

use super::Exit;

#[derive(Debug, Args)]
pub(crate) struct SubscribeArgs {
    /// Multiaddr to listen on (repeatable); port 0 picks a free port, printed on the first line.
    #[arg(long, default_value = "/ip4/127.0.0.1/tcp/0")]
    listen: Vec<Multiaddr>,
    /// Peer to dial once listening (repeatable), e.g. `/ip4/127.0.0.1/tcp/9000/p2p/12D3…`.
    #[arg(long)]
    bootstrap: Vec<Multiaddr>,
    /// Telemetry partitions to subscribe to: ranges and numbers, e.g. `0-9,42`.
    #[arg(long, default_value = "0-99")]
    partitions: Partitions,
    /// Exit after this many messages (status 0 if all verified, else 1).
    #[arg(long)]
    count: Option<u64>,
    /// Exit with status 1 if this much time passes first (e.g. `60s`).
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
}

pub(crate) fn run(args: SubscribeArgs) -> Result<Exit> {
    super::runtime()?.block_on(subscribe(args))
}

async fn subscribe(args: SubscribeArgs) -> Result<Exit> {
    let mut gossip = gossip_node(&args.partitions)?;
    let deadline = args.timeout.map(|t| tokio::time::Instant::now() + t);
    let timer = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timer);

    // Phase 1: learn the actual listen addresses, announce them, then dial.
    let listening = tokio::select! {
        () = &mut timer => {
            eprintln!("timed out before listening");
            return Ok(Exit::CheckFailed);
        }
        listening = gossip.listen(&args.listen) => listening?,
    };
    let mut out = std::io::stdout().lock();
    let announce = json!({
        "peer_id": gossip.local_peer_id().to_string(),
        "listen": listening.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    writeln!(out, "{announce}").context("writing to stdout")?;
    out.flush().context("writing to stdout")?;
    for addr in &args.bootstrap {
        gossip.dial(addr).with_context(|| format!("dialing {addr}"))?;
    }

    // Phase 2: check and print every message.
    let mut received = 0u64;
    let mut all_ok = true;
    loop {
        if args.count.is_some_and(|n| received >= n) {
            return Ok(if all_ok { Exit::Ok } else { Exit::CheckFailed });
        }
        tokio::select! {
            () = &mut timer => {
                eprintln!("timed out after {received} messages");
                return Ok(Exit::CheckFailed);
            }
            inbound = gossip.next() => {
                let Inbound::Message { id, source, topic, data } = inbound else { continue };
                let (line, ok) = check(&topic, &data);
                all_ok &= ok;
                received += 1;
                // Accept forwards the message to our mesh; Reject drops it
                // and applies the P4 penalty to the peer that sent it.
                let acceptance = if ok { MessageAcceptance::Accept } else { MessageAcceptance::Reject };
                gossip.report(&id, &source, acceptance);
                writeln!(out, "{line}").context("writing to stdout")?;
                out.flush().context("writing to stdout")?;
            }
        }
    }
}

/// Decodes and verifies one gossip message: its NDJSON line and whether it passed.
fn check(topic_hash: &TopicHash, data: &[u8]) -> (Value, bool) {
    let topic_partition = topic::telemetry_partition(topic_hash.as_str());
    let mut line = json!({
        "ok": false,
        "publisher": null,
        "msg_chain_id": null,
        "timestamp": null,
        "seq": null,
        "prev": null,
        "partition": topic_partition,
        "topic": topic_hash.as_str(),
        "bytes": data.len(),
    });
    let env = match Envelope::decode(data) {
        Ok(env) => env,
        Err(e) => {
            line["error"] = json!(format!("decode: {e}"));
            return (line, false);
        }
    };
    line["publisher"] = json!(env.id.publisher.to_hex());
    line["msg_chain_id"] = json!(env.id.msg_chain_id);
    line["timestamp"] = json!(env.id.timestamp);
    line["seq"] = json!(env.id.seq);
    line["prev"] = env.prev.map_or(Value::Null, |p| json!([p.timestamp, p.seq]));
    line["partition"] = json!(env.id.partition);
    let error = if topic_partition != Some(env.id.partition) {
        Some(format!("envelope partition {} arrived on topic {topic_hash}", env.id.partition))
    } else {
        env.verify().err().map(|e| format!("signature: {e}"))
    };
    let ok = error.is_none();
    line["ok"] = json!(ok);
    if let Some(e) = error {
        line["error"] = json!(e);
    }
    (line, ok)
}

/// The node's gossip swarm (`vouch-net`), scoring and subscribed to `partitions`.
fn gossip_node(partitions: &Partitions) -> Result<GossipNode> {
    let agent = format!("vouch/{}", env!("CARGO_PKG_VERSION"));
    let key = identity::Keypair::generate_ed25519();
    Ok(GossipNode::new(key, agent, &partitions.topics(), ConnectionCaps::default())?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn swarm_builds_with_scoring_for_its_topics() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let partitions = "3".parse().unwrap();
        rt.block_on(async { assert!(gossip_node(&partitions).is_ok()) });
    }

    #[test]
    fn garbage_is_not_ok() {
        let (line, ok) = check(&TopicHash::from_raw(topic::telemetry_topic(1)), b"\x01\x02");
        assert!(!ok);
        assert_eq!(line["ok"], json!(false));
        assert_eq!(line["partition"], json!(1));
        assert!(line["error"].as_str().is_some());
    }
}
