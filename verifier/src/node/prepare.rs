//! A group's gossip messages made ready for validation, their hashing
//! spread over several threads.
//!
//! A message's envelope id (blake3) and signing hash (Keccak over the whole
//! content) need no state and are most of what validating a large envelope
//! costs; everything after them (the guards, the certificate cache, rate
//! limits, the log) must run in arrival order on the ingest worker. So the
//! worker turns a group's queued items into [`Prepared`] messages here,
//! with the hashing spread over `threads` threads (its own included) and,
//! on each, over the CPU's SIMD lanes (several messages hashed side by
//! side), and then validates them one by one as before. Where the worker
//! validates each chunk as soon as it is hashed (one thread), the envelopes
//! decoded for the hashing go along, so validation does not decode them
//! again; a group hashed ahead on several threads keeps only the digests,
//! so that a waiting message holds one copy of its content, not two.
//! Validation decides exactly as it would without them
//! ([`Unverified::prehash_all`]), and the messages come back in their
//! queue order.

use std::sync::{Mutex, PoisonError};

use libp2p::PeerId;
use libp2p::gossipsub::MessageId;
use vouch_schema::crypto::batch_lanes;

use super::ingest::Item;
use crate::validate::{Keep, Unverified};

/// A queued message, ready for the worker.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// gossipsub's id, for the verdict.
    pub(crate) id: MessageId,
    /// The peer it came from.
    pub(crate) source: PeerId,
    /// What it holds.
    pub(crate) message: Message,
}

/// What a queued message holds.
#[derive(Debug)]
pub(crate) enum Message {
    /// A control-topic message (revocation or checkpoint), as received.
    Control(Vec<u8>),
    /// A telemetry envelope, hashed.
    Telemetry(Unverified),
}

/// Messages a thread takes at a time, at the least: small, so that the
/// worker never waits long for a helper's last share, and large enough that
/// taking the lock is noise beside hashing (tens of µs per envelope of 64
/// events). A chunk is also never smaller than the messages the CPU hashes
/// side by side ([`batch_lanes`]).
const CHUNK: usize = 4;

/// Prepares `items` in order, on up to `threads` threads (the caller's
/// included), hashing each chunk's messages side by side.
///
/// A group too small to share is prepared on the caller's thread alone, a
/// chunk at a time as the caller takes them (so that a chunk's bytes are
/// still in the CPU's cache when it validates them). It is hashed ahead only
/// where the CPU hashes several messages at once, since otherwise validation
/// computes the same hash as it goes, at the same cost.
pub(crate) fn prepare(items: Vec<Item>, threads: usize) -> Box<dyn Iterator<Item = Prepared>> {
    let lanes = batch_lanes();
    let chunk = CHUNK.max(lanes);
    let threads = threads.min(items.len() / chunk).max(1);
    if threads == 1 {
        let mut items = items.into_iter();
        let chunks = std::iter::from_fn(move || {
            let next: Vec<Item> = items.by_ref().take(chunk).collect();
            (!next.is_empty()).then(|| ready(next, (lanes > 1).then_some(Keep::Envelopes)))
        });
        return Box::new(chunks.flatten());
    }
    let mut chunks = Vec::with_capacity(items.len().div_ceil(chunk));
    let mut items = items.into_iter();
    loop {
        let next: Vec<Item> = items.by_ref().take(chunk).collect();
        if next.is_empty() {
            break;
        }
        chunks.push(next);
    }
    let work = Mutex::new(chunks.into_iter().enumerate());
    let run = || {
        let mut done = Vec::new();
        loop {
            let next = work.lock().unwrap_or_else(PoisonError::into_inner).next();
            let Some((n, chunk)) = next else { break };
            done.push((n, ready(chunk, Some(Keep::Digests))));
        }
        done
    };
    let mut done = std::thread::scope(|scope| {
        // A helper that cannot be started leaves its share to the others.
        let helpers: Vec<_> = (1..threads)
            .filter_map(|n| {
                std::thread::Builder::new()
                    .name(format!("vouch-hash-{n}"))
                    .spawn_scoped(scope, run)
                    .ok()
            })
            .collect();
        let mut done = run();
        for helper in helpers {
            // Hashing does not panic; if it ever did, the worker stops with
            // it rather than lose the messages of the helper's chunks.
            let mut theirs = helper.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            done.append(&mut theirs);
        }
        done
    });
    done.sort_unstable_by_key(|(n, _)| *n);
    Box::new(done.into_iter().flat_map(|(_, chunk)| chunk))
}

/// `items` as messages, in order, their signing hashes computed when
/// `prehash` says so, and what it keeps of them.
fn ready(items: Vec<Item>, prehash: Option<Keep>) -> Vec<Prepared> {
    let mut prepared: Vec<Prepared> = items
        .into_iter()
        .map(|item| {
            let message = if item.control {
                Message::Control(item.data)
            } else {
                Message::Telemetry(Unverified::from_topic(item.data, &item.topic))
            };
            Prepared { id: item.id, source: item.source, message }
        })
        .collect();
    if let Some(keep) = prehash {
        let messages = prepared.iter_mut().filter_map(|p| match &mut p.message {
            Message::Telemetry(msg) => Some(msg),
            Message::Control(_) => None,
        });
        Unverified::prehash_all(messages, keep);
    }
    prepared
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use vouch_schema::Envelope;
    use vouch_schema::topic::{CONTROL_TOPIC, telemetry_topic};
    use vouch_testkit::{actor::ChainSigner, fixtures};

    /// `n` items: every fifth a control message, every third of the rest
    /// bytes that are no envelope, the others real envelopes of growing
    /// size (so that hashing has digests to get right, and lanes of unequal
    /// lengths).
    fn items(n: usize) -> Vec<Item> {
        let mut chain = ChainSigner::new(1, 1, "prepare");
        (0..n)
            .map(|i| {
                let control = i % 5 == 0;
                let data = if control || i % 3 == 0 {
                    vec![i as u8; 10 + i]
                } else {
                    chain.next(|ts| fixtures::stamped(1 + i % 7, ts)).encode()
                };
                Item {
                    id: MessageId::from(i.to_be_bytes().to_vec()),
                    source: PeerId::random(),
                    topic: if control { CONTROL_TOPIC.to_owned() } else { telemetry_topic(1) },
                    control,
                    data,
                }
            })
            .collect()
    }

    /// Where a prepared message came from, and its bytes.
    fn shape(prepared: &[Prepared]) -> Vec<(MessageId, PeerId, Vec<u8>)> {
        prepared
            .iter()
            .map(|p| match &p.message {
                Message::Control(data) => (p.id.clone(), p.source, data.clone()),
                Message::Telemetry(msg) => (p.id.clone(), p.source, msg.bytes().to_vec()),
            })
            .collect()
    }

    #[test]
    fn any_number_of_threads_keeps_the_queue_order_and_hashes_right() {
        let base = items(103);
        let alone: Vec<Prepared> = prepare(base.iter().map(clone).collect(), 1).collect();
        for threads in [2, 3, 8, 64] {
            let copy = base.iter().map(clone).collect();
            let shared: Vec<Prepared> = prepare(copy, threads).collect();
            assert_eq!(shape(&shared), shape(&alone), "{threads} threads");
        }
        assert_eq!(alone.len(), 103);
        assert!(alone.iter().zip(&base).all(|(p, i)| p.id == i.id));
        // A digest computed ahead is the one validation would compute.
        let shared: Vec<Prepared> = prepare(base.iter().map(clone).collect(), 8).collect();
        let mut envelopes = 0;
        for p in &shared {
            let Message::Telemetry(msg) = &p.message else { continue };
            let expected = Envelope::decode(msg.bytes()).ok().map(|e| e.signing_hash());
            assert_eq!(msg.signing_hash(), expected.as_ref());
            envelopes += usize::from(expected.is_some());
        }
        assert_eq!(envelopes, 54);
    }

    fn clone(i: &Item) -> Item {
        Item {
            id: i.id.clone(),
            source: i.source,
            topic: i.topic.clone(),
            control: i.control,
            data: i.data.clone(),
        }
    }
}
