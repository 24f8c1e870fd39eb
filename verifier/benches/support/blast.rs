//! Pre-signed envelopes handed to one gossip transport as fast as it takes
//! them: the load of the multi-process benchmarks that measure how fast a
//! node ingests (`converge.rs`, catch-up beside gossip ingest;
//! `saturate.rs`, one node driven to saturation). Signing happens before
//! the clock starts, so the publisher's cost is the transport's alone.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use vouch_delegation::Role;
use vouch_schema::{Address, Event};
use vouch_sdk::Signer;
use vouch_sdk::transport::gossip::GossipTransport;
use vouch_sdk::transport::{Outgoing, Transport};
use vouch_testkit::actor::{Actor, ChainSigner};
use vouch_testkit::now_ms;

/// Undelivered envelopes a blast keeps at most in its transport (its
/// pending buffer holds 1,024; past it the oldest would be dropped).
pub(crate) const MAX_UNDELIVERED: usize = 768;

/// One blast gateway's chain of envelopes.
pub(crate) struct Chain(ChainSigner);

impl Chain {
    /// Gateway `n` in `region`, its certificate valid for a day, its chain
    /// on its default partition under `label`.
    pub(crate) fn new(n: u32, region: &str, label: &str) -> Chain {
        let now = now_ms() / 1000;
        let actor = Actor::numbered(n, Role::Gateway, region, now - 600..now + 86_400);
        let partition = Signer::default_partition(&actor.certificate);
        Chain(ChainSigner::with_actor(actor, partition, label, 0))
    }

    /// The gateway (principal) address.
    pub(crate) fn principal(&self) -> Address {
        self.0.principal()
    }

    /// The delegate key's address (what signs its envelopes).
    pub(crate) fn delegate_address(&self) -> Address {
        self.0.delegate_address()
    }

    /// The chain's next envelope carrying `events`, stamped now (at least a
    /// ms after the last, so a chain never repeats a position).
    fn next(&mut self, mut events: Vec<Event>) -> (u32, Vec<u8>) {
        let ts = now_ms().max(self.0.last_ts() + 1);
        let env = self.0.next_at(ts, |ts| {
            for e in &mut events {
                e.ts = Some(ts);
            }
            events
        });
        (self.0.partition(), env.encode())
    }
}

/// `n` envelopes of `per_envelope` events each (cycling through `events`),
/// round robin over `chains`.
pub(crate) fn sign_blast(
    chains: &mut [Chain],
    events: &[Event],
    n: usize,
    per_envelope: usize,
) -> Vec<(u32, Vec<u8>)> {
    let k = chains.len();
    let mut cycle = events.iter().cycle();
    (0..n)
        .map(|i| {
            let batch = cycle.by_ref().take(per_envelope).cloned().collect();
            chains[i % k].next(batch)
        })
        .collect()
}

/// What handing a blast to the transport took.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    pub(crate) taken: u64,
    pub(crate) refused: u64,
    pub(crate) seconds: f64,
}

/// Hands every envelope to `transport` as fast as it takes them, keeping
/// at most [`MAX_UNDELIVERED`] undelivered so that none is dropped.
///
/// Below that bound the transport's channel (1,024 by default) always has
/// room, so each envelope is handed over once, without a copy kept for a
/// retry: the publisher shares the cores with the node it drives, and a
/// copy of every ~28 KB envelope would be its cost counted against the
/// node. One refused all the same is counted in [`Sent::refused`].
pub(crate) fn blast(transport: &mut GossipTransport, envelopes: Vec<(u32, Vec<u8>)>) -> Sent {
    blast_paced(transport, envelopes, |_| true)
}

/// [`blast`], handing each envelope over only once `may_send(taken)` (the
/// envelopes taken so far) allows it: a closed loop, where the load keeps
/// a bounded lead over what its receiver has done.
pub(crate) fn blast_paced(
    transport: &mut GossipTransport,
    envelopes: Vec<(u32, Vec<u8>)>,
    mut may_send: impl FnMut(u64) -> bool,
) -> Sent {
    let started = Instant::now();
    let mut sent = Sent::default();
    for (partition, bytes) in envelopes {
        while transport.undelivered() >= MAX_UNDELIVERED || !may_send(sent.taken) {
            std::thread::sleep(Duration::from_micros(200));
        }
        match transport.send(Outgoing { partition, bytes }) {
            Ok(()) => sent.taken += 1,
            Err(_) => sent.refused += 1,
        }
    }
    sent.seconds = started.elapsed().as_secs_f64();
    sent
}
