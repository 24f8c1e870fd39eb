//! A sparse log-linear histogram of non-negative integers with about two
//! significant digits (HDR-style): values below 128 are exact, larger ones
//! fall into one of 64 sub-buckets per power of two (under 1.6 % wide).
//! Only non-empty sub-buckets are stored, so a bucket with three samples
//! costs three entries. The exact minimum and maximum are kept so that
//! percentiles never leave the observed range (one sample reads back exactly).

use serde::{Deserialize, Serialize};

use crate::compact::{get32, get64, put};

/// Sub-buckets per power of two above 127.
const SUB: u32 = 64;

/// A sparse histogram; merging is exact and order-independent.
///
/// Read from outside bytes (a snapshot), its entries are put in order as
/// they are read (see [`ordered`]): merging relies on that order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// (sub-bucket index, count), sorted by index, counts non-zero.
    #[serde(rename = "e", deserialize_with = "ordered")]
    entries: Vec<(u16, u32)>,
    #[serde(rename = "n")]
    min: u32,
    #[serde(rename = "x")]
    max: u32,
}

/// Histogram entries as a snapshot spells them, put in order: empty ones
/// dropped, sorted by index, repeated indices summed.
fn ordered<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(u16, u32)>, D::Error> {
    let mut entries = Vec::<(u16, u32)>::deserialize(d)?;
    entries.retain(|&(_, c)| c > 0);
    sort_and_sum(&mut entries);
    Ok(entries)
}

/// Sorts `entries` by index and sums the counts of repeated indices
/// (saturating, as merges do).
fn sort_and_sum(entries: &mut Vec<(u16, u32)>) {
    entries.sort_unstable_by_key(|&(i, _)| i);
    entries.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 = kept.1.saturating_add(later.1);
        }
        same
    });
}

const fn index_of(v: u32) -> u16 {
    if v < 2 * SUB {
        return v as u16;
    }
    let e = 31 - v.leading_zeros() - 6; // v >> e is in 64..128
    (e * SUB + (v >> e)) as u16
}

/// The lowest value and width of sub-bucket `i`. An index beyond the last
/// one (`index_of(u32::MAX)`: only a hand-made snapshot holds one) reads as
/// the last, where a shift would overflow.
fn range_of(i: u16) -> (u64, u64) {
    let i = u32::from(i.min(index_of(u32::MAX)));
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

    /// Adds every sample of `other`, in place: a query folds hundreds of
    /// thousands of small histograms into a few accumulators, so the
    /// accumulator only grows at its end (amortized) and never reallocates
    /// per merge.
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
        let (a, b) = (&self.entries, &other.entries);
        let (mut i, mut j, mut new) = (0, 0, 0);
        while j < b.len() {
            if i == a.len() || b[j].0 < a[i].0 {
                new += 1;
                j += 1;
            } else {
                if b[j].0 == a[i].0 {
                    j += 1;
                }
                i += 1;
            }
        }
        // Merge from the back into the grown vector: every slot is written
        // once, after it has been read.
        let (mut i, mut j) = (self.entries.len(), other.entries.len());
        self.entries.resize(i + new, (0, 0));
        let mut k = self.entries.len();
        while j > 0 {
            let (ib, cb) = other.entries[j - 1];
            k -= 1;
            if i > 0 && self.entries[i - 1].0 > ib {
                self.entries[k] = self.entries[i - 1];
                i -= 1;
            } else if i > 0 && self.entries[i - 1].0 == ib {
                self.entries[k] = (ib, self.entries[i - 1].1.saturating_add(cb));
                i -= 1;
                j -= 1;
            } else {
                self.entries[k] = (ib, cb);
                j -= 1;
            }
        }
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

    /// Appends the packed form: entry count, then (when non-empty) the
    /// minimum, the spread to the maximum, and the entries as index deltas
    /// and counts. Index and spread arithmetic wraps, so any non-empty
    /// histogram (even one read from a hand-made snapshot) packs without
    /// loss; an empty one reads back with the zero bounds `record` gives.
    pub(crate) fn pack(&self, out: &mut Vec<u8>) {
        // Twice the entry count, plus one for a lone sample (one entry of
        // count one at the minimum, which is also the maximum): then only
        // the value follows. Most hours of a key hold one PTFF, one startup
        // and one E2E sample.
        if let [(i, 1)] = self.entries[..]
            && self.min == self.max
            && i == index_of(self.min)
        {
            put(out, 1);
            put(out, u128::from(self.min));
            return;
        }
        put(out, 2 * self.entries.len() as u128);
        if self.entries.is_empty() {
            return;
        }
        put(out, u128::from(self.min));
        put(out, u128::from(self.max.wrapping_sub(self.min)));
        let mut previous = index_of(self.min);
        for &(i, c) in &self.entries {
            put(out, u128::from(i.wrapping_sub(previous)));
            put(out, u128::from(c));
            previous = i;
        }
    }

    /// Reads what [`Histogram::pack`] wrote from the front of `bytes`,
    /// replacing `self` (its vector is reused).
    pub(crate) fn unpack(&mut self, bytes: &mut &[u8]) -> Option<()> {
        self.entries.clear();
        let entries = &mut self.entries;
        (self.min, self.max) = read_packed(bytes, |i, c| entries.push((i, c)))?.unwrap_or((0, 0));
        Some(())
    }

    /// Approximate heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<(u16, u32)>()
    }
}

/// Reads a packed histogram from the front of `bytes`, calling
/// `entry(index, count)` for each entry in index order; returns its
/// (min, max), `None` inside when it is empty.
#[inline]
fn read_packed(bytes: &mut &[u8], mut entry: impl FnMut(u16, u32)) -> Option<Option<(u32, u32)>> {
    let head = get64(bytes)?;
    if head == 1 {
        let v = get32(bytes)?;
        entry(index_of(v), 1);
        return Some(Some((v, v)));
    }
    if head & 1 != 0 {
        return None;
    }
    let n = head / 2;
    if n == 0 {
        return Some(None);
    }
    // Each entry takes at least two bytes: a count beyond that is garbage.
    if n > bytes.len() as u64 {
        return None;
    }
    let min = get32(bytes)?;
    let max = min.wrapping_add(get32(bytes)?);
    let mut previous = index_of(min);
    for _ in 0..n {
        let delta = u16::try_from(get64(bytes)?).ok()?;
        previous = previous.wrapping_add(delta);
        entry(previous, get32(bytes)?);
    }
    Some(Some((min, max)))
}

/// Slots of a [`HistogramSum`]'s table: one per index a `u32` sample
/// can fall into.
const SLOTS: usize = index_of(u32::MAX) as usize + 1;

/// Bounds that widening with any others gives those others.
const NO_BOUNDS: (u32, u32) = (u32::MAX, 0);

/// Many histograms summed at once. A query adds a day of small hourly
/// histograms per series, and the series of an orchestrator's model into
/// one: merging them one by one would walk the growing sum each time, and
/// collecting their entries to sort costs O(N log N) in all entries.
/// Counted in a table with a slot per sub-bucket index, adding an entry
/// costs O(1), and moving or finishing a sum touches only the indices it
/// holds. The result equals the merge of them all.
#[derive(Debug, Clone)]
pub(crate) struct HistogramSum {
    /// Count per index below [`SLOTS`], saturating as merges do; empty
    /// until the first sample, so that a sum never added to costs nothing.
    counts: Vec<u32>,
    /// The indices counted into while their slot was zero: every non-zero
    /// slot, each once (twice only after a zero count, which no histogram
    /// holds; finishing drops repeats).
    touched: Vec<u16>,
    /// Entries past the table: only a hand-made snapshot holds such an
    /// index (see [`range_of`]); kept apart, exact.
    beyond: Vec<(u16, u32)>,
    /// The least minimum and greatest maximum added ([`NO_BOUNDS`] while
    /// nothing is).
    bounds: (u32, u32),
}

impl Default for HistogramSum {
    fn default() -> HistogramSum {
        HistogramSum {
            counts: Vec::new(),
            touched: Vec::new(),
            beyond: Vec::new(),
            bounds: NO_BOUNDS,
        }
    }
}

impl HistogramSum {
    fn widen(&mut self, (min, max): (u32, u32)) {
        self.bounds = (self.bounds.0.min(min), self.bounds.1.max(max));
    }

    /// Adds `c` samples at index `i`.
    #[inline]
    fn count(&mut self, i: u16, c: u32) {
        match self.counts.get_mut(usize::from(i)) {
            Some(slot) => {
                if *slot == 0 {
                    self.touched.push(i);
                }
                *slot = slot.saturating_add(c);
            }
            None => self.count_cold(i, c),
        }
    }

    /// [`HistogramSum::count`] for the first sample or an index past the
    /// table.
    #[cold]
    fn count_cold(&mut self, i: u16, c: u32) {
        if usize::from(i) >= SLOTS {
            self.beyond.push((i, c));
        } else {
            self.counts = vec![0; SLOTS];
            self.count(i, c);
        }
    }

    /// Adds every sample of `h`.
    pub(crate) fn add(&mut self, h: &Histogram) {
        if !h.entries.is_empty() {
            self.widen((h.min, h.max));
            for &(i, c) in &h.entries {
                self.count(i, c);
            }
        }
    }

    /// Adds a histogram packed at the front of `bytes`.
    #[inline]
    pub(crate) fn add_packed(&mut self, bytes: &mut &[u8]) -> Option<()> {
        if let Some(bounds) = read_packed(bytes, |i, c| self.count(i, c))? {
            self.widen(bounds);
        }
        Some(())
    }

    /// Adds everything summed in `self` to `into` and empties `self`.
    pub(crate) fn drain_into(&mut self, into: &mut HistogramSum) {
        into.widen(self.bounds);
        for &i in &self.touched {
            let slot = &mut self.counts[usize::from(i)];
            into.count(i, std::mem::take(slot));
        }
        into.beyond.extend_from_slice(&self.beyond);
        self.touched.clear();
        self.beyond.clear();
        self.bounds = NO_BOUNDS;
    }

    /// Whether nothing was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.touched.is_empty() && self.beyond.is_empty()
    }

    /// Empties the sum, keeping its room.
    pub(crate) fn clear(&mut self) {
        for &i in &self.touched {
            self.counts[usize::from(i)] = 0;
        }
        self.touched.clear();
        self.beyond.clear();
        self.bounds = NO_BOUNDS;
    }

    /// The sum, as one histogram; the sum is left empty (keeping its room).
    pub(crate) fn finish(&mut self) -> Histogram {
        self.touched.sort_unstable();
        self.touched.dedup();
        let mut entries = Vec::with_capacity(self.touched.len() + self.beyond.len());
        for &i in &self.touched {
            let c = std::mem::take(&mut self.counts[usize::from(i)]);
            if c > 0 {
                entries.push((i, c));
            }
        }
        // Past every slot's index, so they follow in order.
        sort_and_sum(&mut self.beyond);
        entries.append(&mut self.beyond);
        self.touched.clear();
        // An empty sum reads back as an empty histogram: zero bounds.
        let (min, max) = if entries.is_empty() { (0, 0) } else { self.bounds };
        self.bounds = NO_BOUNDS;
        Histogram { entries, min, max }
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
    fn a_sum_counts_through_its_table_as_a_sort_would() {
        let mut x = 0x9e37_79b9u32;
        let mut entries = Vec::new();
        for _ in 0..800 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            entries.push((index_of(x % 90_000), x % 7 + 1));
        }
        entries.push((index_of(1), u32::MAX));
        entries.push((index_of(1), 5));
        // Past the table: only a hand-made snapshot holds these.
        entries.push((u16::MAX, 1));
        entries.push((u16::MAX, 2));
        let sorted = |e: &[(u16, u32)]| {
            let mut v = e.to_vec();
            sort_and_sum(&mut v);
            v
        };
        let one = |&(i, c): &(u16, u32)| Histogram { entries: vec![(i, c)], min: 1, max: 90_000 };
        // Half counted straight in, half through a second sum moved in.
        let (mut sum, mut part) = (HistogramSum::default(), HistogramSum::default());
        for (n, e) in entries.iter().enumerate() {
            if n % 2 == 0 { &mut sum } else { &mut part }.add(&one(e));
        }
        part.drain_into(&mut sum);
        assert!(part.is_empty());
        let h = sum.finish();
        assert_eq!(h.entries, sorted(&entries));
        assert!(h.entries.contains(&(1, u32::MAX)), "sums saturate as merges do");
        assert!(sum.is_empty(), "finishing empties the sum");
        assert_eq!(sum.finish(), Histogram::default());
        sum.add(&one(&(5, 2)));
        assert_eq!(sum.finish(), one(&(5, 2)), "and it counts again from nothing");
    }

    #[test]
    fn a_snapshot_histogram_is_put_in_order() {
        let read = |json: &str| match serde_json::from_str::<Histogram>(json) {
            Ok(h) => h,
            Err(e) => panic!("{json}: {e}"),
        };
        let h = read(r#"{"e":[[300,2],[130,1],[300,1],[7,0]],"n":130,"x":5000}"#);
        assert_eq!(h.entries, vec![(130, 1), (300, 3)]);
        let mut sum = h.clone();
        sum.merge(&h);
        assert_eq!(sum.count(), 8);
        // An empty histogram's bounds say nothing: no percentile, no effect.
        let empty = read(r#"{"e":[[9,0]],"n":4,"x":9}"#);
        assert!(empty.is_empty() && empty.percentile(50.0).is_none());
        let mut same = h.clone();
        same.merge(&empty);
        assert_eq!(same, h);
    }

    #[test]
    fn an_index_past_the_last_reads_as_the_last() {
        let last = index_of(u32::MAX);
        assert_eq!(range_of(u16::MAX), range_of(last));
        let (low, width) = range_of(last);
        assert!(low + width > u64::from(u32::MAX));
        let h = Histogram { entries: vec![(u16::MAX, 3)], min: 5, max: 9 };
        assert_eq!(h.percentile(50.0), Some(9), "kept within the recorded bounds");
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

    fn from_values(values: &[u32]) -> Histogram {
        let mut h = Histogram::new();
        for &v in values {
            h.record(u64::from(v));
        }
        h
    }

    proptest::proptest! {
        #[test]
        fn in_place_merge_equals_rebuild_and_packs_losslessly(
            a in proptest::collection::vec(0u32..5_000_000, 0..40),
            b in proptest::collection::vec(0u32..5_000_000, 0..40),
            tail in proptest::collection::vec(0u8..=255, 0..4),
        ) {
            let mut merged = from_values(&a);
            merged.merge(&from_values(&b));
            let both: Vec<u32> = a.iter().chain(&b).copied().collect();
            proptest::prop_assert_eq!(&merged, &from_values(&both));
            let mut sum = HistogramSum::default();
            sum.add(&from_values(&a));
            let mut packed_b = Vec::new();
            from_values(&b).pack(&mut packed_b);
            proptest::prop_assert!(sum.add_packed(&mut &packed_b[..]).is_some());
            proptest::prop_assert_eq!(&sum.finish(), &merged);
            let mut packed = Vec::new();
            merged.pack(&mut packed);
            packed.extend_from_slice(&tail);
            let mut rest: &[u8] = &packed;
            let mut back = from_values(&[7, 9_000]);
            proptest::prop_assert!(back.unpack(&mut rest).is_some());
            proptest::prop_assert_eq!(&back, &merged);
            proptest::prop_assert_eq!(rest, &tail[..]);
        }

        #[test]
        fn unpacking_garbage_never_panics(bytes in proptest::collection::vec(0u8..=255, 0..64)) {
            let mut rest: &[u8] = &bytes;
            let _ = Histogram::new().unpack(&mut rest);
        }
    }
}
