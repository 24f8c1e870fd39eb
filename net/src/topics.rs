//! Topics: the one parser of partition lists (`"0-9,42"`, used by
//! `vouch node`'s `[p2p] partitions` and `vouch subscribe --partitions`) and
//! the hashes of every partition's topic.

use std::collections::BTreeSet;
use std::str::FromStr;

use libp2p::gossipsub::{IdentTopic, TopicHash};
use vouch_schema::limits::MAX_PARTITIONS;
use vouch_schema::topic;

/// A non-empty set of telemetry partitions, each in `0..MAX_PARTITIONS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitions(BTreeSet<u32>);

/// Why a partition list does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionsError {
    /// An item is not a number.
    #[error("{0:?} is not a partition number")]
    NotANumber(String),
    /// A number is past the last partition.
    #[error("partition {0} is not in 0..{MAX_PARTITIONS}")]
    OutOfRange(u32),
    /// A range ends before it starts.
    #[error("empty range {0:?}")]
    EmptyRange(String),
    /// The list names no partition.
    #[error("no partitions given")]
    Empty,
}

impl FromStr for Partitions {
    type Err = PartitionsError;

    /// Parses ranges and numbers separated by commas, e.g. `"0-9, 42"`.
    fn from_str(s: &str) -> Result<Partitions, PartitionsError> {
        let mut set = BTreeSet::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let parse = |n: &str| -> Result<u32, PartitionsError> {
                let n = n.trim();
                let v: u32 = n.parse().map_err(|_| PartitionsError::NotANumber(n.to_owned()))?;
                if v >= MAX_PARTITIONS {
                    return Err(PartitionsError::OutOfRange(v));
                }
                Ok(v)
            };
            let (lo, hi) = (parse(lo)?, parse(hi)?);
            if lo > hi {
                return Err(PartitionsError::EmptyRange(part.to_owned()));
            }
            set.extend(lo..=hi);
        }
        if set.is_empty() {
            return Err(PartitionsError::Empty);
        }
        Ok(Partitions(set))
    }
}

impl Partitions {
    /// The partitions, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    /// How many partitions there are (at least one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a parsed list names at least one partition.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The telemetry topic of every partition, in ascending order.
    pub fn topics(&self) -> Vec<IdentTopic> {
        self.iter().map(|p| IdentTopic::new(topic::telemetry_topic(p))).collect()
    }
}

/// The control topic (`/vouch/1/control`, revocations).
pub fn control_topic() -> IdentTopic {
    IdentTopic::new(topic::CONTROL_TOPIC)
}

/// The hash of `partition`'s telemetry topic.
pub fn telemetry_topic_hash(partition: u32) -> TopicHash {
    IdentTopic::new(topic::telemetry_topic(partition)).hash()
}

/// Every telemetry partition's topic and the control topic: what a
/// publisher, which may publish on any of them, scores.
pub fn all_topic_hashes() -> impl Iterator<Item = TopicHash> {
    (0..MAX_PARTITIONS).map(telemetry_topic_hash).chain(std::iter::once(control_topic().hash()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<u32>, PartitionsError> {
        s.parse::<Partitions>().map(|p| p.iter().collect())
    }

    #[test]
    fn partitions_parse() {
        assert_eq!(parse("0-2,7, 9-9").unwrap(), [0, 1, 2, 7, 9]);
        assert_eq!(parse("0-2, 7").unwrap(), [0, 1, 2, 7]);
        assert_eq!(parse(" 3 - 4 ").unwrap(), [3, 4]);
        assert_eq!("0-99".parse::<Partitions>().unwrap().len(), 100);
        assert_eq!(parse("100"), Err(PartitionsError::OutOfRange(100)));
        assert_eq!(parse("5-3"), Err(PartitionsError::EmptyRange("5-3".to_owned())));
        assert_eq!(parse("x"), Err(PartitionsError::NotANumber("x".to_owned())));
        assert_eq!(parse(""), Err(PartitionsError::Empty));
        assert_eq!(parse(" , "), Err(PartitionsError::Empty));
    }

    #[test]
    fn topics_follow_the_schema() {
        let p: Partitions = "3,7".parse().unwrap();
        let topics = p.topics();
        assert_eq!(topics[0].hash(), telemetry_topic_hash(3));
        assert_eq!(topics[1].to_string(), topic::telemetry_topic(7));
        assert_eq!(control_topic().to_string(), topic::CONTROL_TOPIC);
        let all: BTreeSet<_> = all_topic_hashes().collect();
        assert_eq!(all.len(), MAX_PARTITIONS as usize + 1);
        assert!(all.contains(&control_topic().hash()));
    }
}
