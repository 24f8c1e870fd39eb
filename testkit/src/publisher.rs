//! What the SDK's publisher tests and benchmarks share: a delegate and its
//! certificate, publisher settings, numbered probe events, transports that
//! record, stall or discard what they are given, and the checks a stream
//! of signed envelopes must pass.

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use k256::ecdsa::SigningKey;
use vouch_delegation::{Role, SignedDelegation};
use vouch_schema::{Envelope, Event, MessageRef, TelemetryBatch};
use vouch_sdk::transport::{Outgoing, Transport, TransportError};
use vouch_sdk::{PublisherSettings, Signer};

use crate::actor::{Actor, local_chain};
use crate::now_secs;

/// A fresh delegate key and a certificate for it on the local chain, valid for an hour.
pub fn identity(role: Role, region: &str) -> (SigningKey, SignedDelegation) {
    let now = now_secs();
    let actor = Actor::generated(role, region, now - 60..now + 3600, local_chain());
    (actor.delegate, actor.certificate)
}

/// A signer for a fresh [`identity`].
pub fn signer(role: Role, region: &str) -> Signer {
    let (key, cert) = identity(role, region);
    Signer::new(key, cert)
}

/// Batches of at most `max_events`, lingering `linger_ms`, in a queue of `capacity`.
pub fn settings(max_events: usize, linger_ms: u64, capacity: usize) -> PublisherSettings {
    PublisherSettings {
        max_events,
        linger: Duration::from_millis(linger_ms),
        queue_capacity: capacity,
        ..PublisherSettings::default()
    }
}

/// A numbered test event: `probe` with `data.i = i`.
pub fn probe(i: u64) -> Event {
    Event::from_type_and_data(
        "probe",
        serde_json::json!({"i": i, "type": "tick"}),
        1_700_000_000_000,
    )
    .unwrap()
}

/// How a [`TestTransport`] behaves while stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// Deliver normally.
    Open,
    /// `send` returns `Full`.
    Full,
    /// `send` blocks until the stall is cleared.
    Block,
}

/// What a [`TestTransport`] saw.
#[derive(Debug)]
pub struct TestState {
    /// How it behaves now.
    pub stall: Stall,
    /// What it delivered.
    pub sent: Vec<Outgoing>,
    /// `flush` calls.
    pub flushes: usize,
    /// Whether `close` was called.
    pub closed: bool,
    /// Number of `send` calls currently blocked.
    pub blocked: usize,
}

/// A transport that records what it takes and can be stalled.
#[derive(Debug, Clone)]
pub struct TestTransport {
    /// Its state, shared with the test.
    pub state: Arc<(Mutex<TestState>, Condvar)>,
    /// Panic in `send` (a transport bug the publisher must survive).
    pub panic_on_send: bool,
}

impl TestTransport {
    /// A transport starting as `stall`.
    pub fn new(stall: Stall) -> TestTransport {
        TestTransport {
            state: Arc::new((
                Mutex::new(TestState {
                    stall,
                    sent: Vec::new(),
                    flushes: 0,
                    closed: false,
                    blocked: 0,
                }),
                Condvar::new(),
            )),
            panic_on_send: false,
        }
    }

    /// Changes how it behaves (and wakes blocked senders).
    pub fn set_stall(&self, stall: Stall) {
        let (m, cv) = &*self.state;
        m.lock().unwrap().stall = stall;
        cv.notify_all();
    }

    /// What it delivered so far.
    pub fn sent(&self) -> Vec<Outgoing> {
        self.state.0.lock().unwrap().sent.clone()
    }

    /// Waits until a `send` is blocked in the stall.
    pub fn wait_blocked(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.state;
        let mut st = m.lock().unwrap();
        while st.blocked == 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = cv.wait_timeout(st, deadline - now).unwrap().0;
        }
        true
    }
}

impl Transport for TestTransport {
    fn send(&mut self, envelope: Outgoing) -> Result<(), TransportError> {
        assert!(!self.panic_on_send, "test transport told to panic");
        let (m, cv) = &*self.state;
        let mut st = m.lock().unwrap();
        loop {
            match st.stall {
                Stall::Open => {
                    st.sent.push(envelope);
                    return Ok(());
                }
                Stall::Full => return Err(TransportError::Full),
                Stall::Block => {
                    st.blocked += 1;
                    cv.notify_all();
                    st = cv.wait(st).unwrap();
                    st.blocked -= 1;
                }
            }
        }
    }

    fn flush(&mut self, _deadline: Instant) -> Result<(), TransportError> {
        self.state.0.lock().unwrap().flushes += 1;
        Ok(())
    }

    fn close(&mut self, _deadline: Instant) -> Result<(), TransportError> {
        self.state.0.lock().unwrap().closed = true;
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "test"
    }
}

/// A transport that throws envelopes away (benchmarks, overhead tests).
#[derive(Debug, Default)]
pub struct Discard;

impl Transport for Discard {
    fn send(&mut self, envelope: Outgoing) -> Result<(), TransportError> {
        std::hint::black_box(envelope);
        Ok(())
    }
    fn flush(&mut self, _deadline: Instant) -> Result<(), TransportError> {
        Ok(())
    }
    fn close(&mut self, _deadline: Instant) -> Result<(), TransportError> {
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "discard"
    }
}

/// Decodes and verifies signed envelopes: each is well formed, signed by
/// `signer`'s key, on its stream and partition, carries its certificate,
/// and the whole sequence is one chain numbered without gaps. Returns the
/// events in order.
pub fn check_envelopes(frames: &[Vec<u8>], expect: &Signer, max_events: usize) -> Vec<Event> {
    let cert = expect.certificate.encode();
    let mut prev: Option<MessageRef> = None;
    let mut chain_id: Option<String> = None;
    let mut events = Vec::new();
    for (i, bytes) in frames.iter().enumerate() {
        assert!(bytes.len() <= vouch_schema::limits::MAX_ENVELOPE_BYTES);
        let env = Envelope::decode(bytes).unwrap_or_else(|e| panic!("envelope {i}: {e}"));
        env.verify().unwrap_or_else(|e| panic!("envelope {i} signature: {e}"));
        assert_eq!(env.encode(), *bytes, "envelope {i} is not canonical");
        assert_eq!(env.id.publisher, expect.address());
        assert_eq!(env.id.stream_id, expect.stream_id);
        assert_eq!(env.id.partition, expect.partition);
        match &chain_id {
            None => chain_id = Some(env.id.msg_chain_id.clone()),
            Some(c) => assert_eq!(&env.id.msg_chain_id, c, "one chain per publisher"),
        }
        // No gaps: every envelope points at the one before it.
        assert_eq!(env.prev, prev, "envelope {i} prev link");
        let here = env.id.as_ref();
        if let Some(p) = prev {
            assert!(here > p, "envelope {i} numbering goes back");
            if here.timestamp == p.timestamp {
                assert_eq!(here.seq, p.seq + 1, "envelope {i} seq gap");
            } else {
                assert_eq!(here.seq, 0, "envelope {i} seq must restart on a new timestamp");
            }
        } else {
            assert_eq!(here.seq, 0);
        }
        prev = Some(here);
        let batch = TelemetryBatch::decode(&env.content).unwrap();
        assert_eq!(batch.certificate, cert, "certificate rides in every batch");
        assert!(!batch.events.is_empty() && batch.events.len() <= max_events);
        events.extend(batch.events);
    }
    events
}

/// Envelope bytes of the outgoing messages.
pub fn bytes_of(sent: &[Outgoing]) -> Vec<Vec<u8>> {
    sent.iter().map(|o| o.bytes.clone()).collect()
}

/// The `data.i` of probe events, checking each appears once.
pub fn probe_ids(events: &[Event]) -> HashSet<u64> {
    let mut seen = HashSet::new();
    for e in events {
        let i = e.get_u64("/i").unwrap();
        assert!(seen.insert(i), "event {i} published twice");
    }
    seen
}

/// Polls `cond` until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    cond()
}
