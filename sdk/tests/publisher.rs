//! The publisher end to end: batching, numbering, signing, the bounded
//! queue under a stalled transport, and flush/close deadlines.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vouch_delegation::{Role, keys};
use vouch_schema::Origin;
use vouch_sdk::config::{DropPolicy, PublisherConfig, TransportKind};
use vouch_sdk::stats::ErrorKind;
use vouch_sdk::transport::file::read_frames;
use vouch_sdk::{PublishError, Publisher, PublisherError, PublisherSettings, Signer};
use vouch_testkit::actor::local_chain;
use vouch_testkit::publisher::*;

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn file_transport_end_to_end_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = identity(Role::Gateway, "FRA");
    keys::write_hex_key(&dir.path().join("delegate.key"), &key, keys::WriteMode::CreateNew)
        .unwrap();
    std::fs::write(dir.path().join("delegate.cert"), cert.encode()).unwrap();
    let config_path = dir.path().join("publisher.toml");
    std::fs::write(
        &config_path,
        "key_file = \"delegate.key\"\ncertificate = \"delegate.cert\"\n\
         [batch]\nmax_events = 64\nlinger_ms = 20\n\
         [transport]\nkind = \"file\"\npath = \"out.frames\"\n",
    )
    .unwrap();
    let config = PublisherConfig::from_file(&config_path).unwrap();
    assert_eq!(config.transport.kind, TransportKind::File);
    let publisher = Publisher::new(&config).unwrap();

    const N: u64 = 1000;
    for i in 0..N {
        if i % 2 == 0 {
            publisher.publish(probe(i)).unwrap();
        } else {
            let data = format!(r#"{{"i": "{i}", "type": "tick", "timestamp": ""}}"#);
            publisher.publish_go_livepeer("probe", data.as_bytes()).unwrap();
        }
    }
    let stats = publisher.close(10 * SECOND).unwrap();
    assert_eq!((stats.published_events, stats.sent_events, stats.queued), (N, N, 0));
    assert_eq!(stats.dropped_queue_full + stats.dropped_transport + stats.dropped_invalid, 0);

    let frames = read_frames(dir.path().join("out.frames")).unwrap();
    assert_eq!(frames.len() as u64, stats.sent_envelopes);
    assert!(frames.len() >= (N as usize).div_ceil(64));
    let expect = Signer::new(key, cert);
    assert_eq!(expect.stream_id, format!("{}/livepeer/telemetry", expect.certificate.principal));
    assert_eq!(expect.partition, vouch_schema::streamr::partition_for_key(100, "FRA"));
    let events = check_envelopes(&frames, &expect, 64);
    assert_eq!(probe_ids(&events), (0..N).collect());
    for e in &events {
        assert_eq!(e.gateway_region.as_deref(), Some("FRA"));
        assert_eq!(e.origin, Some(Origin::Production));
    }
}

#[test]
fn batches_seal_at_max_events_at_linger_and_at_the_byte_limit() {
    // Count: with a long linger, full batches go out on their own.
    let t = TestTransport::new(Stall::Open);
    let s = signer(Role::Orchestrator, "");
    let expect = Signer::new(s.key.clone(), s.certificate.clone());
    let p = Publisher::with_transport(s, settings(16, 60_000, 1000), Box::new(t.clone())).unwrap();
    for i in 0..48 {
        p.publish(probe(i)).unwrap();
    }
    assert!(eventually(5 * SECOND, || p.stats().sent_envelopes == 3), "{:?}", p.stats());
    assert!(t.sent().iter().all(|o| o.partition == 0));
    p.publish(probe(48)).unwrap();
    // Linger: a lone event waits at most the linger (here a minute) unless flushed.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(p.stats().sent_envelopes, 3);
    p.flush(5 * SECOND).unwrap();
    assert_eq!(p.stats().sent_envelopes, 4);
    drop(p);
    let events = check_envelopes(&bytes_of(&t.sent()), &expect, 16);
    assert_eq!(probe_ids(&events), (0..49).collect());

    // Linger: a short linger sends a partial batch without a flush.
    let t = TestTransport::new(Stall::Open);
    let p = Publisher::with_transport(
        signer(Role::Gateway, "MDW"),
        settings(64, 30, 100),
        Box::new(t.clone()),
    )
    .unwrap();
    let start = Instant::now();
    p.publish(probe(1)).unwrap();
    p.publish(probe(2)).unwrap();
    assert!(eventually(5 * SECOND, || p.stats().sent_events == 2));
    assert!(start.elapsed() >= Duration::from_millis(25), "sent before the linger");
    drop(p);

    // Bytes: 10 KB events fill the 64 KiB envelope long before 64 events.
    let t = TestTransport::new(Stall::Open);
    let s = signer(Role::Gateway, "");
    let expect = Signer::new(s.key.clone(), s.certificate.clone());
    let p = Publisher::with_transport(s, settings(64, 60_000, 100), Box::new(t.clone())).unwrap();
    for i in 0..40 {
        let mut e = probe(i);
        e.data["blob"] = serde_json::Value::String("x".repeat(10_000));
        p.publish(e).unwrap();
    }
    let stats = p.close(5 * SECOND).unwrap();
    assert_eq!(stats.sent_events, 40);
    let sent = t.sent();
    assert!(sent.len() >= 7, "{} envelopes", sent.len());
    assert!(sent.iter().all(|o| o.bytes.len() <= vouch_schema::limits::MAX_ENVELOPE_BYTES));
    let events = check_envelopes(&bytes_of(&sent), &expect, 64);
    assert_eq!(probe_ids(&events), (0..40).collect());
}

#[test]
fn publish_never_blocks_on_a_blocked_transport_and_resumes() {
    let t = TestTransport::new(Stall::Block);
    let s = signer(Role::Gateway, "FRA");
    let expect = Signer::new(s.key.clone(), s.certificate.clone());
    let (capacity, max_events) = (100, 8);
    let p = Publisher::with_transport(s, settings(max_events, 0, capacity), Box::new(t.clone()))
        .unwrap();
    p.publish(probe(0)).unwrap();
    assert!(t.wait_blocked(5 * SECOND), "worker never reached the transport");

    let mut slowest = Duration::ZERO;
    let (mut accepted, mut refused) = (1u64, 0u64);
    let start = Instant::now();
    for i in 1..20_000 {
        let t0 = Instant::now();
        match p.publish(probe(i)) {
            Ok(()) => accepted += 1,
            Err(PublishError::QueueFull) => refused += 1,
            Err(e) => panic!("{e}"),
        }
        slowest = slowest.max(t0.elapsed());
        let stats = p.stats();
        // The bound: the queue, plus at most one batch held by the stalled send.
        assert!(stats.queued as usize <= capacity + max_events, "{stats:?}");
    }
    let elapsed = start.elapsed();
    assert!(slowest < Duration::from_millis(100), "a publish took {slowest:?}");
    assert!(elapsed < 10 * SECOND, "20,000 publishes took {elapsed:?}");
    let stats = p.stats();
    assert_eq!(stats.dropped_queue_full, refused);
    assert!(refused >= 19_000, "{stats:?}");
    assert_eq!(stats.published_events, accepted);
    // A flush cannot finish while the transport is stalled: its deadline holds.
    let t0 = Instant::now();
    assert!(matches!(p.flush(Duration::from_millis(150)), Err(PublisherError::Deadline(_))));
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(150) && waited < SECOND, "{waited:?}");

    // The stall clears: everything accepted goes out, and publishing resumes.
    t.set_stall(Stall::Open);
    p.flush(5 * SECOND).unwrap();
    for i in 100_000..100_010 {
        p.publish(probe(i)).unwrap();
    }
    let stats = p.close(5 * SECOND).unwrap();
    assert_eq!(stats.sent_events, accepted + 10);
    assert_eq!(stats.queued, 0);
    let events = check_envelopes(&bytes_of(&t.sent()), &expect, max_events);
    let ids = probe_ids(&events);
    assert_eq!(ids.len() as u64, accepted + 10);
    assert!((100_000..100_010).all(|i| ids.contains(&i)));
}

#[test]
fn a_full_transport_counts_drops_and_keeps_the_chain_whole() {
    let t = TestTransport::new(Stall::Open);
    let s = signer(Role::Gateway, "FRA");
    let expect = Signer::new(s.key.clone(), s.certificate.clone());
    let p = Publisher::with_transport(s, settings(10, 0, 1000), Box::new(t.clone())).unwrap();
    for i in 0..30 {
        p.publish(probe(i)).unwrap();
    }
    p.flush(5 * SECOND).unwrap();
    t.set_stall(Stall::Full);
    for i in 30..60 {
        p.publish(probe(i)).unwrap();
    }
    p.flush(5 * SECOND).unwrap();
    let stats = p.stats();
    assert_eq!(stats.dropped_transport, 30, "{stats:?}");
    assert_eq!(stats.last_error.as_deref(), Some("test transport: transport buffer full"));
    t.set_stall(Stall::Open);
    for i in 60..90 {
        p.publish(probe(i)).unwrap();
    }
    let stats = p.close(5 * SECOND).unwrap();
    assert_eq!((stats.sent_events, stats.dropped_transport, stats.queued), (60, 30, 0));
    // Refused envelopes never existed: the delivered ones still link up without gaps.
    let events = check_envelopes(&bytes_of(&t.sent()), &expect, 10);
    assert_eq!(probe_ids(&events), (0..30).chain(60..90).collect());
}

/// Refuses every other envelope it is handed (as a full buffer would).
struct EveryOther {
    calls: u64,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl vouch_sdk::transport::Transport for EveryOther {
    fn send(
        &mut self,
        envelope: vouch_sdk::transport::Outgoing,
    ) -> Result<(), vouch_sdk::transport::TransportError> {
        self.calls += 1;
        if self.calls.is_multiple_of(2) {
            return Err(vouch_sdk::transport::TransportError::Full);
        }
        self.sent.lock().unwrap().push(envelope.bytes);
        Ok(())
    }
    fn flush(&mut self, _: Instant) -> Result<(), vouch_sdk::transport::TransportError> {
        Ok(())
    }
    fn close(&mut self, _: Instant) -> Result<(), vouch_sdk::transport::TransportError> {
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "every other"
    }
}

/// Batches sealed together are signed together (their hashing side by
/// side); when one of them is refused, the ones after it are numbered
/// again after the last one sent, so the chain that goes out stays whole.
#[test]
fn batches_signed_together_keep_the_chain_whole_when_some_are_refused() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let t = EveryOther { calls: 0, sent: Arc::clone(&sent) };
    let s = signer(Role::Gateway, "FRA");
    let expect = Signer::new(s.key.clone(), s.certificate.clone());
    let p = Publisher::with_transport(s, settings(4, 1000, 10_000), Box::new(t)).unwrap();
    // Queued faster than the worker seals: full batches wait in the queue,
    // so several are sealed before they are signed.
    for i in 0..4_000 {
        p.publish(probe(i)).unwrap();
    }
    let stats = p.close(10 * SECOND).unwrap();
    assert_eq!(stats.sent_envelopes, 500, "{stats:?}");
    assert_eq!((stats.sent_events, stats.dropped_transport), (2_000, 2_000));
    let events = check_envelopes(&sent.lock().unwrap(), &expect, 4);
    assert_eq!(events.len(), 2_000);
}

#[test]
fn drop_oldest_keeps_the_newest() {
    let t = TestTransport::new(Stall::Block);
    let settings = PublisherSettings { drop_policy: DropPolicy::DropOldest, ..settings(4, 0, 10) };
    let s = signer(Role::Gateway, "");
    let expect = Signer::new(s.key.clone(), s.certificate.clone());
    let p = Publisher::with_transport(s, settings, Box::new(t.clone())).unwrap();
    p.publish(probe(0)).unwrap();
    assert!(t.wait_blocked(5 * SECOND));
    for i in 1..1000 {
        p.publish(probe(i)).unwrap();
    }
    assert!(p.stats().queued <= 14);
    t.set_stall(Stall::Open);
    let stats = p.close(5 * SECOND).unwrap();
    assert_eq!(stats.published_events, 1000);
    assert_eq!(stats.sent_events + stats.dropped_queue_full, 1000, "{stats:?}");
    let ids = probe_ids(&check_envelopes(&bytes_of(&t.sent()), &expect, 4));
    assert!((990..1000).all(|i| ids.contains(&i)), "the newest ten survive: {ids:?}");
}

#[test]
fn close_and_drop_honour_their_deadlines() {
    let t = TestTransport::new(Stall::Block);
    let p = Publisher::with_transport(
        signer(Role::Gateway, ""),
        settings(4, 0, 100),
        Box::new(t.clone()),
    )
    .unwrap();
    for i in 0..50 {
        p.publish(probe(i)).unwrap();
    }
    assert!(t.wait_blocked(5 * SECOND));
    let t0 = Instant::now();
    match p.close(Duration::from_millis(200)) {
        Err(PublisherError::Deadline(n)) => assert!(n > 0),
        other => panic!("{other:?}"),
    }
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(200) && waited < SECOND, "{waited:?}");

    let t2 = TestTransport::new(Stall::Block);
    let p = Publisher::with_transport(
        signer(Role::Gateway, ""),
        settings(4, 0, 100),
        Box::new(t2.clone()),
    )
    .unwrap();
    p.publish(probe(0)).unwrap();
    assert!(t2.wait_blocked(5 * SECOND));
    let t0 = Instant::now();
    drop(p);
    assert!(t0.elapsed() < SECOND, "drop took {:?}", t0.elapsed());
    // Free the threads left behind.
    t.set_stall(Stall::Open);
    t2.set_stall(Stall::Open);

    // An idle publisher closes at once and closes its transport.
    let t3 = TestTransport::new(Stall::Open);
    let p = Publisher::with_transport(
        signer(Role::Gateway, ""),
        settings(4, 1000, 100),
        Box::new(t3.clone()),
    )
    .unwrap();
    p.publish(probe(1)).unwrap();
    p.flush(Duration::MAX).unwrap();
    let t0 = Instant::now();
    let stats = p.close(5 * SECOND).unwrap();
    assert!(t0.elapsed() < SECOND);
    assert_eq!(stats.sent_events, 1);
    assert!(t3.state.0.lock().unwrap().closed);
}

#[test]
fn concurrent_publishers_lose_nothing() {
    let t = TestTransport::new(Stall::Open);
    let s = signer(Role::Orchestrator, "LAX");
    let expect = Signer::new(s.key.clone(), s.certificate.clone());
    let p = Publisher::with_transport(s, settings(64, 5, 100_000), Box::new(t.clone())).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..4u64 {
            let p = &p;
            scope.spawn(move || {
                for i in 0..2500 {
                    p.publish(probe(thread * 10_000 + i)).unwrap();
                }
            });
        }
    });
    let stats = p.close(10 * SECOND).unwrap();
    assert_eq!(stats.sent_events, 10_000);
    let ids = probe_ids(&check_envelopes(&bytes_of(&t.sent()), &expect, 64));
    assert_eq!(ids.len(), 10_000);
}

#[test]
fn provenance_is_stamped() {
    let t = TestTransport::new(Stall::Open);
    let s = signer(Role::Loadtest, "SEA");
    let expect = Signer::new(s.key.clone(), s.certificate.clone());
    let p = Publisher::with_transport(s, settings(8, 0, 100), Box::new(t.clone())).unwrap();
    let mut claims_production = probe(1);
    claims_production.origin = Some(Origin::Production);
    claims_production.gateway_region = Some("FRA".into());
    p.publish(claims_production).unwrap();
    p.publish(probe(2)).unwrap();
    p.close(5 * SECOND).unwrap();
    let events = check_envelopes(&bytes_of(&t.sent()), &expect, 8);
    // A load-test delegate's events are always synthetic; a region already set is kept.
    assert!(events.iter().all(|e| e.origin == Some(Origin::Synthetic)));
    assert_eq!(events[0].gateway_region.as_deref(), Some("FRA"));
    assert_eq!(events[1].gateway_region.as_deref(), Some("SEA"));
}

#[test]
fn invalid_events_and_input_are_counted_not_sent() {
    let t = TestTransport::new(Stall::Open);
    let p = Publisher::with_transport(
        signer(Role::Gateway, ""),
        settings(8, 0, 100),
        Box::new(t.clone()),
    )
    .unwrap();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&heard);
    p.set_error_hook(Some(Arc::new(move |kind: ErrorKind, message: &str| {
        sink.lock().unwrap().push((kind, message.to_owned()));
    })));
    let mut bad = probe(1);
    bad.stream_id = Some(String::new());
    p.publish(bad).unwrap();
    let mut huge = probe(2);
    huge.data["blob"] = serde_json::Value::String("x".repeat(70_000));
    p.publish(huge).unwrap();
    // Malformed JSON is taken and found by the worker; a bad family is refused on the spot.
    p.publish_go_livepeer("probe", b"{nope").unwrap();
    assert!(matches!(p.publish_go_livepeer("Probe!", b"{}"), Err(PublishError::Adapter(_))));
    p.publish(probe(3)).unwrap();
    let stats = p.close(5 * SECOND).unwrap();
    assert_eq!((stats.sent_events, stats.dropped_invalid, stats.queued), (1, 4, 0), "{stats:?}");
    let heard = heard.lock().unwrap();
    assert_eq!(heard.len(), 4, "every drop reaches the hook: {heard:?}");
    assert!(heard.iter().all(|(kind, _)| *kind == ErrorKind::InvalidEvent), "{heard:?}");
    assert!(heard.iter().any(|(_, m)| m.starts_with("event is not JSON")), "{heard:?}");
}

#[test]
fn wrong_key_expired_certificate_and_missing_gossip_are_refused() {
    let (_, cert) = identity(Role::Gateway, "");
    let other = keys::generate();
    let err = Publisher::with_transport(
        Signer::new(other, cert),
        PublisherSettings::default(),
        Box::new(TestTransport::new(Stall::Open)),
    )
    .unwrap_err();
    assert!(matches!(err, PublisherError::KeyMismatch { .. }), "{err}");

    let principal = keys::generate();
    let delegate = keys::generate();
    let terms = vouch_delegation::DelegationTerms {
        delegate: keys::address(&delegate),
        role: Role::Gateway,
        region: String::new(),
        not_before: 1_000,
        not_after: 2_000,
        nonce: 0,
    };
    let expired =
        vouch_delegation::SignedDelegation::issue(&principal, local_chain(), terms).unwrap();
    let err = Publisher::with_transport(
        Signer::new(delegate, expired),
        PublisherSettings::default(),
        Box::new(TestTransport::new(Stall::Open)),
    )
    .unwrap_err();
    assert!(matches!(err, PublisherError::Certificate(_)), "{err}");

    let mut s = signer(Role::Gateway, "");
    s.partition = 100;
    let err = Publisher::with_transport(
        s,
        PublisherSettings::default(),
        Box::new(TestTransport::new(Stall::Open)),
    )
    .unwrap_err();
    assert!(matches!(err, PublisherError::Identity(_)), "{err}");
}

#[test]
fn a_panicking_transport_closes_the_publisher() {
    let mut t = TestTransport::new(Stall::Open);
    t.panic_on_send = true;
    let p = Publisher::with_transport(signer(Role::Gateway, ""), settings(1, 0, 100), Box::new(t))
        .unwrap();
    p.publish(probe(1)).unwrap();
    assert!(eventually(5 * SECOND, || p.publish(probe(2)) == Err(PublishError::Closed)));
    assert!(p.stats().last_error.is_some());
    assert!(p.close(SECOND).is_err());
}

/// With no peer reachable, the gossip transport keeps the newest envelopes
/// in its bounded buffer and drops the oldest; the publisher's stats show
/// both, so a host (go-livepeer through `vouch_stats_json`) can see the loss.
#[test]
fn gossip_buffer_overflow_is_visible_in_publisher_stats() {
    use vouch_sdk::config::{TransportConfig, TransportKind};
    use vouch_sdk::transport::gossip::GossipTransport;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = TransportConfig {
        kind: TransportKind::Gossip,
        path: None,
        listen: Vec::new(),
        bootstrap: vec![format!("/ip4/127.0.0.1/tcp/{closed}")],
    };
    let transport = GossipTransport::start(&config).unwrap();
    // One event per envelope, more envelopes than the 1,024-envelope buffer.
    let p = Publisher::with_transport(
        signer(Role::Gateway, "FRA"),
        settings(1, 0, 4096),
        Box::new(transport),
    )
    .unwrap();
    for i in 0..1100 {
        p.publish(probe(i)).unwrap();
    }
    assert!(
        eventually(60 * SECOND, || {
            // Every envelope is either still waiting for a peer or dropped.
            let s = p.stats();
            s.sent_envelopes == 1100
                && s.transport_dropped > 0
                && s.transport_pending + s.transport_dropped == 1100
        }),
        "{:?}",
        p.stats()
    );
}
