//! A group's gossip messages made ready for validation, their hashing
//! spread over several threads.
//!
//! A message's envelope id (blake3) and signing hash (Keccak over the whole
//! content) need no state and are most of what validating a large envelope
//! costs; everything after them (the guards, the certificate cache, rate
//! limits, the log) must run in arrival order on the ingest worker. So the
//! worker turns a group's queued items into [`Prepared`] messages here,
//! with the hashing spread over `threads` threads (its own included), and
//! then validates them one by one as before. Validation decides exactly as
//! it would without the hashes ([`Unverified::prehash`]), and the messages
//! come back in their queue order.

use std::sync::{Mutex, PoisonError};

use libp2p::PeerId;
use libp2p::gossipsub::MessageId;

use super::ingest::Item;
use crate::validate::Unverified;

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

/// Messages a thread takes at a time: small, so that the worker never
/// waits long for a helper's last share, and large enough that taking the
/// lock is noise beside hashing (tens of µs per envelope of 64 events).
const CHUNK: usize = 4;

/// Prepares `items` in order, on up to `threads` threads (the caller's
/// included). A group too small to share is prepared on the caller's thread
/// alone, without the signing hash: validation computes it as it goes, so
/// computing it ahead would only add a decode.
pub(crate) fn prepare(items: Vec<Item>, threads: usize) -> Vec<Prepared> {
    let threads = threads.min(items.len() / CHUNK).max(1);
    if threads == 1 {
        return items.into_iter().map(|item| ready(item, false)).collect();
    }
    let mut chunks = Vec::with_capacity(items.len().div_ceil(CHUNK));
    let mut items = items.into_iter();
    loop {
        let chunk: Vec<Item> = items.by_ref().take(CHUNK).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push(chunk);
    }
    let work = Mutex::new(chunks.into_iter().enumerate());
    let run = || {
        let mut done = Vec::new();
        loop {
            let next = work.lock().unwrap_or_else(PoisonError::into_inner).next();
            let Some((n, chunk)) = next else { break };
            done.push((n, chunk.into_iter().map(|item| ready(item, true)).collect::<Vec<_>>()));
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
    done.into_iter().flat_map(|(_, chunk)| chunk).collect()
}

fn ready(item: Item, prehash: bool) -> Prepared {
    let message = if item.control {
        Message::Control(item.data)
    } else {
        let mut msg = Unverified::from_topic(item.data, &item.topic);
        if prehash {
            msg.prehash();
        }
        Message::Telemetry(msg)
    };
    Prepared { id: item.id, source: item.source, message }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use vouch_schema::topic::{CONTROL_TOPIC, telemetry_topic};

    fn items(n: usize) -> Vec<Item> {
        (0..n)
            .map(|i| {
                let control = i % 5 == 0;
                Item {
                    id: MessageId::from(i.to_be_bytes().to_vec()),
                    source: PeerId::random(),
                    topic: if control { CONTROL_TOPIC.to_owned() } else { telemetry_topic(1) },
                    control,
                    data: vec![i as u8; 10 + i],
                }
            })
            .collect()
    }

    fn shape(prepared: &[Prepared]) -> Vec<(MessageId, PeerId, Vec<u8>, bool)> {
        prepared
            .iter()
            .map(|p| match &p.message {
                Message::Control(data) => (p.id.clone(), p.source, data.clone(), true),
                Message::Telemetry(msg) => (p.id.clone(), p.source, msg.bytes().to_vec(), false),
            })
            .collect()
    }

    #[test]
    fn any_number_of_threads_keeps_the_queue_order() {
        let base = items(103);
        let alone = prepare(base.iter().map(clone).collect(), 1);
        for threads in [2, 3, 8, 64] {
            let copy = base.iter().map(clone).collect();
            assert_eq!(shape(&prepare(copy, threads)), shape(&alone), "{threads} threads");
        }
        assert_eq!(alone.len(), 103);
        assert!(alone.iter().zip(&base).all(|(p, i)| p.id == i.id));
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
