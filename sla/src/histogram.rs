//! A sparse log-linear histogram of non-negative integers with about two
//! significant digits (HDR-style): values below 128 are exact, larger ones
//! fall into one of 64 sub-buckets per power of two (under 1.6 % wide).
//! Only non-empty sub-buckets are stored, so a bucket with three samples
//! costs three entries. The exact minimum and maximum are kept so that
//! percentiles never leave the observed range (one sample reads back exactly).

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two above 127.
const SUB: u32 = 64;

/// A sparse histogram; merging is exact and order-independent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// (sub-bucket index, count), sorted by index, counts non-zero.
    #[serde(rename = "e")]
    entries: Vec<(u16, u32)>,
    #[serde(rename = "n")]
    min: u32,
    #[serde(rename = "x")]
    max: u32,
}

fn index_of(v: u32) -> u16 {
    if v < 2 * SUB {
        return v as u16;
    }
    let e = 31 - v.leading_zeros() - 6; // v >> e is in 64..128
    (e * SUB + (v >> e)) as u16
}

/// The lowest value and width of sub-bucket `i`.
fn range_of(i: u16) -> (u64, u64) {
    let i = u32::from(i);
    if i < 2 * SUB {
        return (u64::from(i), 1);
    }
    let e = (i - SUB) / SUB;
    let m = i - e * SUB;
    (u64::from(m) << e, 1u64 << e)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram::default()
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.entries.iter().map(|&(_, c)| u64::from(c)).sum()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records one sample (values above `u32::MAX` are clamped).
    pub fn record(&mut self, value: u64) {
        let v = u32::try_from(value).unwrap_or(u32::MAX);
        if self.entries.is_empty() {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        let i = index_of(v);
        match self.entries.binary_search_by_key(&i, |&(k, _)| k) {
            Ok(at) => self.entries[at].1 = self.entries[at].1.saturating_add(1),
            Err(at) => self.entries.insert(at, (i, 1)),
        }
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if other.entries.is_empty() {
            return;
        }
        if self.entries.is_empty() {
            self.clone_from(other);
            return;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        // Accumulators soon hold every sub-bucket they are fed: add in place.
        if other.entries.len() <= self.entries.len() {
            let mut at = 0;
            let mut in_place = true;
            for &(i, _) in &other.entries {
                match self.entries[at..].binary_search_by_key(&i, |&(k, _)| k) {
                    Ok(j) => at += j,
                    Err(_) => {
                        in_place = false;
                        break;
                    }
                }
            }
            if in_place {
                let mut at = 0;
                for &(i, c) in &other.entries {
                    while self.entries[at].0 != i {
                        at += 1;
                    }
                    self.entries[at].1 = self.entries[at].1.saturating_add(c);
                }
                return;
            }
        }
        let mut out = Vec::with_capacity(self.entries.len() + other.entries.len());
        let (mut a, mut b) = (self.entries.iter().peekable(), other.entries.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(&&(ia, ca)), Some(&&(ib, cb))) => {
                    if ia == ib {
                        out.push((ia, ca.saturating_add(cb)));
                        a.next();
                        b.next();
                    } else if ia < ib {
                        out.push((ia, ca));
                        a.next();
                    } else {
                        out.push((ib, cb));
                        b.next();
                    }
                }
                (Some(&&e), None) => {
                    out.push(e);
                    a.next();
                }
                (None, Some(&&e)) => {
                    out.push(e);
                    b.next();
                }
                (None, None) => break,
            }
        }
        self.entries = out;
    }

    /// The nearest-rank `p`th percentile (0 < p ≤ 100): the middle of the
    /// sub-bucket holding that rank, kept within the exact min and max.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil().clamp(1.0, n as f64) as u64;
        let mut seen = 0u64;
        for &(i, c) in &self.entries {
            seen += u64::from(c);
            if seen >= rank {
                let (low, width) = range_of(i);
                let mid = low + (width - 1) / 2;
                return Some(mid.clamp(u64::from(self.min), u64::from(self.max)));
            }
        }
        Some(u64::from(self.max))
    }

    /// Approximate heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<(u16, u32)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_narrow() {
        let mut last = None;
        for v in 0..200_000u32 {
            let i = index_of(v);
            let (low, width) = range_of(i);
            assert!(u64::from(v) >= low && u64::from(v) < low + width, "{v}");
            assert!(width == 1 || (width as f64) / (low as f64) < 0.016, "{v}");
            if let Some(l) = last {
                assert!(i == l || i == l + 1);
            }
            last = Some(i);
        }
    }

    #[test]
    fn percentiles_and_merge() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        for v in 1..=50 {
            a.record(v);
        }
        for v in 51..=100 {
            b.record(v);
        }
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.percentile(50.0), Some(50));
        assert_eq!(ab.percentile(99.0), Some(99));
        // Merging a subset adds in place; the result is the same as a rebuild.
        let mut again = ab.clone();
        again.merge(&a);
        let mut rebuilt = Histogram::new();
        for v in (1..=50).chain(1..=100) {
            rebuilt.record(v);
        }
        assert_eq!(again, rebuilt);
        let mut one = Histogram::new();
        one.record(1509);
        assert_eq!(one.percentile(50.0), Some(1509));
    }
}
