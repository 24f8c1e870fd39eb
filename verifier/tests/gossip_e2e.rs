//! The SDK's gossip transport end to end across processes on loopback:
//! `GossipTransport` (this process) → libp2p gossipsub → `vouch subscribe`
//! (a separate process), which decodes and verifies every envelope.
//!
//! Every wait is bounded by a generous deadline; nothing asserts timing.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};

use std::net::TcpListener;

use std::time::{Duration, Instant};

use k256::ecdsa::SigningKey;
use serde_json::Value;
use vouch_schema::limits::MAX_ENVELOPE_BYTES;
use vouch_schema::{Address, Envelope, MessageId, MessageRef};
use vouch_sdk::config::{TransportConfig, TransportKind};
use vouch_sdk::transport::gossip::{GossipOptions, GossipTransport};
use vouch_sdk::transport::{Outgoing, Transport, TransportError};
use vouch_testkit::WAIT;
use vouch_testkit::cli::Vouch;
use vouch_testkit::subscriber::Subscriber;

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

const PARTITION: u32 = 7;

/// Signs a numbered chain the way the publisher does: Streamr numbering,
/// `seq` resets when the timestamp moves, `prev` links each to the last.
#[derive(Clone)]
struct Chain {
    key: SigningKey,
    stream_id: String,
    msg_chain_id: String,
    last: Option<MessageRef>,
    base: u64,
    /// Every message signed so far and its `prev`.
    signed: BTreeMap<MessageRef, Option<MessageRef>>,
}

impl Chain {
    fn new(key_byte: u8, msg_chain_id: &str) -> Chain {
        let key = SigningKey::from_slice(&[key_byte; 32]).unwrap();
        let address = vouch_schema::crypto::address_of(key.verifying_key());
        Chain {
            stream_id: format!("{}/livepeer/telemetry", address.to_hex()),
            key,
            msg_chain_id: msg_chain_id.to_owned(),
            last: None,
            base: 1_750_000_000_000,
            signed: BTreeMap::new(),
        }
    }

    /// The i-th message: three messages per millisecond.
    fn next(&mut self, i: u64, content: Vec<u8>) -> (MessageRef, Outgoing) {
        let this = MessageRef { timestamp: self.base + i / 3, seq: (i % 3) as u32 };
        let id = MessageId {
            stream_id: self.stream_id.clone(),
            partition: PARTITION,
            timestamp: this.timestamp,
            seq: this.seq,
            publisher: Address::ZERO,
            msg_chain_id: self.msg_chain_id.clone(),
        };
        let env = Envelope::sign(id, self.last, content, &self.key).unwrap();
        self.signed.insert(this, self.last);
        self.last = Some(this);
        (this, Outgoing { partition: PARTITION, bytes: env.encode() })
    }
}

fn config(bootstrap: &[String]) -> TransportConfig {
    TransportConfig {
        kind: TransportKind::Gossip,
        path: None,
        listen: Vec::new(),
        bootstrap: bootstrap.to_vec(),
    }
}

fn msg_ref(line: &Value) -> MessageRef {
    MessageRef {
        timestamp: line["timestamp"].as_u64().unwrap(),
        seq: line["seq"].as_u64().unwrap() as u32,
    }
}

fn prev_ref(line: &Value) -> Option<MessageRef> {
    line["prev"].as_array().map(|p| MessageRef {
        timestamp: p[0].as_u64().unwrap(),
        seq: p[1].as_u64().unwrap() as u32,
    })
}

/// Every line verified, came from `chain`, and carries the `prev` it was signed with.
fn assert_verified(lines: &[Value], chain: &Chain) {
    for line in lines {
        assert_eq!(line["ok"], Value::Bool(true), "{line}");
        assert_eq!(line["partition"].as_u64(), Some(u64::from(PARTITION)), "{line}");
        assert_eq!(line["msg_chain_id"].as_str(), Some(chain.msg_chain_id.as_str()), "{line}");
        assert_eq!(Some(&prev_ref(line)), chain.signed.get(&msg_ref(line)), "{line}");
    }
}

/// As [`assert_verified`], and the messages form one unbroken chain: sorted
/// by position, each one's `prev` is the one before it.
fn assert_unbroken(lines: &[Value], chain: &Chain) {
    assert_verified(lines, chain);
    let mut lines = lines.to_vec();
    lines.sort_by_key(msg_ref);
    for pair in lines.windows(2) {
        assert_eq!(prev_ref(&pair[1]), Some(msg_ref(&pair[0])), "gap before {}", pair[1]);
    }
}

/// Content padded so that the chain's `i`-th envelope is exactly `MAX_ENVELOPE_BYTES`.
fn content_for_max_envelope(chain: &Chain, i: u64) -> Vec<u8> {
    let mut len = MAX_ENVELOPE_BYTES - 400;
    loop {
        let (_, out) = chain.clone().next(i, vec![0x5a; len]);
        match out.bytes.len() {
            n if n == MAX_ENVELOPE_BYTES => return vec![0x5a; len],
            n if n < MAX_ENVELOPE_BYTES => len += MAX_ENVELOPE_BYTES - n,
            n => len -= n - MAX_ENVELOPE_BYTES,
        }
    }
}

#[test]
fn every_envelope_arrives_and_verifies() {
    const N: u64 = 300;
    let sub = Subscriber::spawn(VOUCH, "/ip4/127.0.0.1/tcp/0", N as usize);
    let mut transport = GossipTransport::start(&config(&sub.listen)).unwrap();
    let mut chain = Chain::new(0x42, "e2e-chain");
    let mut sent = BTreeSet::new();
    for i in 0..N {
        // The last envelope is the largest the wire format allows.
        let content = if i == N - 1 {
            content_for_max_envelope(&chain, i)
        } else {
            format!("event {i}").into_bytes()
        };
        let (pos, out) = chain.next(i, content);
        if i == N - 1 {
            assert_eq!(out.bytes.len(), MAX_ENVELOPE_BYTES);
        }
        transport.send(out).unwrap();
        sent.insert(pos);
    }
    transport.flush(Instant::now() + WAIT).unwrap();

    let lines = sub.take(N as usize);
    let received: BTreeSet<MessageRef> = lines.iter().map(msg_ref).collect();
    assert_eq!(received, sent);
    assert_unbroken(&lines, &chain);
    assert_eq!(prev_ref(lines.iter().min_by_key(|l| msg_ref(l)).unwrap()), None);
    assert!(lines.iter().any(|l| l["bytes"].as_u64() == Some(MAX_ENVELOPE_BYTES as u64)));
    sub.wait_success();

    let stats = transport.stats();
    assert_eq!((stats.accepted, stats.published, stats.pending), (N, N, 0), "{stats:?}");
    assert_eq!(stats.dropped_pending, 0);
    transport.close(Instant::now() + WAIT).unwrap();
}

#[test]
fn stalled_transport_stays_non_blocking_and_resumes() {
    const PENDING: usize = 32;
    const BEFORE: u64 = 100;
    const AFTER: u64 = 10;
    // Reserve a port, then free it: nothing listens there until the subscriber starts.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("/ip4/127.0.0.1/tcp/{port}");
    let options = GossipOptions {
        channel_capacity: 64,
        pending_capacity: PENDING,
        backoff_max: Duration::from_secs(2),
        ..Default::default()
    };
    let mut transport =
        GossipTransport::start_with(&config(std::slice::from_ref(&addr)), options).unwrap();
    let mut chain = Chain::new(0x43, "stall-chain");

    // No peer: every send returns at once, Ok or Full; nothing is published.
    let mut taken = Vec::new();
    let mut full = 0u64;
    for i in 0..BEFORE {
        let (pos, out) = chain.next(i, format!("stalled {i}").into_bytes());
        match transport.send(out) {
            Ok(()) => taken.push(pos),
            Err(TransportError::Full) => full += 1,
            Err(e) => panic!("send {i}: {e}"),
        }
    }
    assert_eq!(taken.len() as u64 + full, BEFORE);
    assert!(taken.len() > PENDING, "{full} of {BEFORE} sends found the channel full");
    let deadline = Instant::now() + WAIT;
    while transport.stats().pending + transport.stats().dropped_pending < taken.len() as u64 {
        assert!(Instant::now() < deadline, "{:?}", transport.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = transport.stats();
    assert_eq!(stats.accepted, taken.len() as u64, "{stats:?}");
    assert_eq!(stats.published, 0, "{stats:?}");
    assert_eq!(stats.pending, PENDING as u64, "the bound holds: {stats:?}");
    assert_eq!(stats.dropped_pending, (taken.len() - PENDING) as u64, "{stats:?}");
    match transport.flush(Instant::now() + Duration::from_millis(200)) {
        Err(TransportError::Deadline(n)) => assert_eq!(n, PENDING),
        other => panic!("flush with no peer: {other:?}"),
    }

    // The peer appears on that port: the redial delivers the newest PENDING.
    let sub = Subscriber::spawn(VOUCH, &addr, PENDING + AFTER as usize);
    let delivered: Vec<MessageRef> = taken[taken.len() - PENDING..].to_vec();
    let lines = sub.take(PENDING);
    let received: BTreeSet<MessageRef> = lines.iter().map(msg_ref).collect();
    assert_eq!(received, delivered.iter().copied().collect());
    // Each kept the `prev` it was signed with; the first links to a message
    // dropped while stalled. A send that found the channel full (a drop the
    // publisher counts) is the only way to a gap among them.
    assert_verified(&lines, &chain);
    if full == 0 {
        assert_unbroken(&lines, &chain);
    }

    // Publishing resumes.
    let mut resumed = BTreeSet::new();
    for i in BEFORE..BEFORE + AFTER {
        let (pos, out) = chain.next(i, format!("resumed {i}").into_bytes());
        let deadline = Instant::now() + WAIT;
        loop {
            match transport.send(out.clone()) {
                Ok(()) => break,
                Err(TransportError::Full) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("send {i}: {e}"),
            }
        }
        resumed.insert(pos);
    }
    transport.flush(Instant::now() + WAIT).unwrap();
    let lines = sub.take(AFTER as usize);
    assert_eq!(lines.iter().map(msg_ref).collect::<BTreeSet<_>>(), resumed);
    assert_unbroken(&lines, &chain);
    sub.wait_success();
    let stats = transport.stats();
    assert_eq!(stats.published, PENDING as u64 + AFTER, "{stats:?}");
    assert_eq!(stats.pending, 0, "{stats:?}");

    // The peer went away (it exited after --count): wait until the transport
    // has noticed, then publish into the gap and bring a peer back on the
    // same port. The re-dial delivers what waited.
    let deadline = Instant::now() + WAIT;
    while transport.stats().connected_peers > 0 {
        assert!(Instant::now() < deadline, "{:?}", transport.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut again = BTreeSet::new();
    for i in BEFORE + AFTER..BEFORE + 2 * AFTER {
        let (pos, out) = chain.next(i, format!("after reconnect {i}").into_bytes());
        transport.send(out).unwrap();
        again.insert(pos);
    }
    let sub = Subscriber::spawn(VOUCH, &addr, AFTER as usize);
    transport.flush(Instant::now() + WAIT).unwrap();
    let lines = sub.take(AFTER as usize);
    assert_eq!(lines.iter().map(msg_ref).collect::<BTreeSet<_>>(), again);
    assert_unbroken(&lines, &chain);
    sub.wait_success();

    let stats = transport.stats();
    assert_eq!(stats.published, PENDING as u64 + 2 * AFTER, "{stats:?}");
    assert_eq!(stats.pending, 0, "{stats:?}");
    assert_eq!(stats.accepted, stats.published + stats.dropped_pending, "{stats:?}");
    transport.close(Instant::now() + WAIT).unwrap();
}

#[test]
fn tampered_envelope_is_reported_not_ok() {
    let sub = Subscriber::spawn(VOUCH, "/ip4/127.0.0.1/tcp/0", 2);
    let mut transport = GossipTransport::start(&config(&sub.listen)).unwrap();
    let mut chain = Chain::new(0x44, "tamper-chain");
    let (good, out) = chain.next(0, b"honest".to_vec());
    transport.send(out).unwrap();
    let (bad, mut out) = chain.next(1, b"tamper-me".to_vec());
    let at = out.bytes.windows(9).position(|w| w == b"tamper-me").unwrap();
    out.bytes[at] ^= 0x01;
    transport.send(out).unwrap();
    transport.flush(Instant::now() + WAIT).unwrap();

    let mut lines = sub.take(2);
    lines.sort_by_key(msg_ref);
    assert_eq!((msg_ref(&lines[0]), msg_ref(&lines[1])), (good, bad));
    assert_eq!(lines[0]["ok"], Value::Bool(true), "{}", lines[0]);
    assert_eq!(lines[1]["ok"], Value::Bool(false), "{}", lines[1]);
    assert!(lines[1]["error"].as_str().unwrap().starts_with("signature"), "{}", lines[1]);
    // A failed check makes the subscriber exit with status 1.
    let status = sub.wait_exit();
    assert_eq!(status.code(), Some(1));
    transport.close(Instant::now() + WAIT).unwrap();
}
