//! Events waiting for their time: a simulation plans a session's events
//! ahead, and the driver hands each to its publisher once the clock reaches
//! it (an event must never be stamped after the envelope that carries it).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use vouch_schema::Event;

/// Planned events, each for one publisher (an index the caller assigns),
/// released in time order. Bounded: planning past the bound drops and counts.
#[derive(Debug)]
pub struct Timeline {
    heap: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: std::collections::HashMap<u64, Event>,
    next: u64,
    capacity: usize,
    dropped: u64,
}

impl Timeline {
    /// An empty timeline holding at most `capacity` events.
    pub fn new(capacity: usize) -> Timeline {
        Timeline {
            heap: BinaryHeap::new(),
            events: std::collections::HashMap::new(),
            next: 0,
            capacity,
            dropped: 0,
        }
    }

    /// Plans `event` for `publisher` at `at_ms`; `false` (and counted) when full.
    pub fn push(&mut self, at_ms: u64, publisher: usize, event: Event) -> bool {
        if self.events.len() >= self.capacity {
            self.dropped += 1;
            return false;
        }
        let id = self.next;
        self.next += 1;
        self.heap.push(Reverse((at_ms, id, publisher)));
        self.events.insert(id, event);
        true
    }

    /// Every event due at `now_ms`, in time order (ties in planning order).
    pub fn due(&mut self, now_ms: u64) -> Vec<(usize, Event)> {
        let mut out = Vec::new();
        while let Some(Reverse((at, id, publisher))) = self.heap.peek().copied() {
            if at > now_ms {
                break;
            }
            self.heap.pop();
            if let Some(e) = self.events.remove(&id) {
                out.push((publisher, e));
            }
        }
        out
    }

    /// Events still planned.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing is planned.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Events refused because the timeline was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}
