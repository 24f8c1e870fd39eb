//! The bounded set of message ids the bridge has carried, in either
//! direction: what breaks loops between gossip and MQTT.

use std::collections::{HashMap, VecDeque};

use vouch_schema::topic::MESSAGE_ID_LEN;

/// A content-addressed message id ([`vouch_schema::bridge::envelope_message_id`]).
pub type MessageKey = [u8; MESSAGE_ID_LEN];

/// Which way a message first crossed the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Read from the verifier log and published to MQTT.
    Outbound,
    /// Received on MQTT, validated and gossiped.
    Inbound,
}

/// Insertion-ordered, bounded: when full, the oldest id is evicted and counted.
#[derive(Debug)]
pub struct SeenSet {
    map: HashMap<MessageKey, Direction>,
    order: VecDeque<MessageKey>,
    capacity: usize,
    evictions: u64,
}

impl SeenSet {
    /// An empty set holding at most `capacity` ids (at least 1).
    pub fn new(capacity: usize) -> SeenSet {
        SeenSet {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            evictions: 0,
        }
    }

    /// The direction `id` first crossed in, if it is remembered.
    pub fn get(&self, id: &MessageKey) -> Option<Direction> {
        self.map.get(id).copied()
    }

    /// Remembers `id` as crossing `direction`, unless already remembered;
    /// returns the direction already recorded, if any.
    pub fn insert(&mut self, id: MessageKey, direction: Direction) -> Option<Direction> {
        if let Some(&d) = self.map.get(&id) {
            return Some(d);
        }
        if self.map.len() >= self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.map.remove(&old);
            self.evictions += 1;
        }
        self.map.insert(id, direction);
        self.order.push_back(id);
        None
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Ids evicted because the set was full.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_first_direction_wins() {
        let mut s = SeenSet::new(2);
        assert_eq!(s.insert([1; 20], Direction::Inbound), None);
        assert_eq!(s.insert([1; 20], Direction::Outbound), Some(Direction::Inbound));
        assert_eq!(s.insert([2; 20], Direction::Outbound), None);
        assert_eq!(s.insert([3; 20], Direction::Outbound), None);
        assert_eq!((s.len(), s.evictions()), (2, 1));
        assert_eq!(s.get(&[1; 20]), None, "oldest evicted");
        assert_eq!(s.get(&[3; 20]), Some(Direction::Outbound));
    }
}
