//! Sealed buckets, packed: a [`Frozen`] store holds the buckets of one
//! series that can no longer change (sealed minutes, complete hours) as
//! varint-encoded records in one byte vector.
//!
//! A day of hour buckets as structs costs ~430 bytes each (23 counters,
//! four histogram vectors, a B-tree slot); packed, a typical hour of one
//! (orchestrator, model, region) costs ~50 bytes, and a query reads the
//! records front to back from one allocation instead of chasing tree nodes.
//! Packing is lossless: a record decodes to the bucket that was packed, so
//! scores, snapshots and checkpoints are the same bytes as before.

use std::marker::PhantomData;

/// Appends `v` as an LEB128 varint.
pub(crate) fn put(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads an LEB128 varint of at most 128 bits; `None` when the bytes end
/// first or the value overflows.
pub(crate) fn get(bytes: &mut &[u8]) -> Option<u128> {
    let mut v = 0u128;
    for shift in (0..128).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        let part = u128::from(b & 0x7f);
        if shift > 0 && part >> (128 - shift) != 0 {
            return None;
        }
        v |= part << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Reads a varint that must fit a `u64`: the query's inner loop, so a
/// tight loop over at most ten bytes rather than [`get`]'s 128-bit one,
/// and one or two bytes (most counts, deltas, lengths and latencies)
/// read before any loop.
#[inline]
pub(crate) fn get64(bytes: &mut &[u8]) -> Option<u64> {
    match **bytes {
        [b, ref rest @ ..] if b < 0x80 => {
            *bytes = rest;
            Some(u64::from(b))
        }
        [low, b, ref rest @ ..] if b < 0x80 => {
            *bytes = rest;
            Some(u64::from(low & 0x7f) | u64::from(b) << 7)
        }
        _ => get64_long(bytes),
    }
}

/// [`get64`] past its one- and two-byte cases.
fn get64_long(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (n, &b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * n);
        if b & 0x80 == 0 {
            // The tenth byte holds only bit 63.
            if n == 9 && b > 1 {
                return None;
            }
            *bytes = &bytes[n + 1..];
            return Some(v);
        }
    }
    None
}

/// Reads a varint that must fit a `u32`.
#[inline]
pub(crate) fn get32(bytes: &mut &[u8]) -> Option<u32> {
    get64(bytes).and_then(|v| u32::try_from(v).ok())
}

/// Asks the processor to start loading the cache lines `value` spans
/// (does nothing off x86-64).
#[allow(unsafe_code)]
#[inline]
pub(crate) fn prefetch<T: ?Sized>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let front = std::ptr::from_ref(value).cast::<i8>();
        for offset in (0..std::mem::size_of_val(value)).step_by(64) {
            // SAFETY: a prefetch is a hint: it loads nothing into the
            // program and never faults, whatever the address (here inside
            // a live value).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(front.wrapping_add(offset)) }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Reads the record at the front of `rest` (see [`Frozen`]), whose key
/// counts from `previous`: its key and its bucket's bytes. `None` at the
/// end, or when the bytes are not a record.
#[inline(always)]
fn read_record<'a>(rest: &mut &'a [u8], previous: u32) -> Option<(u32, &'a [u8])> {
    if rest.is_empty() {
        return None;
    }
    let delta = get32(rest)?;
    let n = usize::try_from(get64(rest)?).ok()?;
    if n > rest.len() {
        return None;
    }
    let (body, tail) = rest.split_at(n);
    *rest = tail;
    Some((previous.checked_add(delta)?, body))
}

/// A bucket type that packs into bytes and back without loss.
pub(crate) trait Pack {
    /// Appends the packed form of `self`.
    fn pack(&self, out: &mut Vec<u8>);
    /// Overwrites `self` with the bucket packed in `bytes` (reusing its
    /// allocations); `None` if the bytes are not a packed bucket.
    fn unpack(&mut self, bytes: &[u8]) -> Option<()>;
}

/// Buckets keyed by ascending `u32` (minute or hour index), packed as
/// records `[key − previous key][length][bucket]`, all varints but the
/// bucket. Only appended at the end and cut at the front.
///
/// A store holds more than the windows most queries read (a week of hours
/// for the 7-day window; the 24-hour leaderboard reads the last day), and a
/// record is found only by reading those before it. So the store keeps a
/// *mark*: where the records of its last `span` keys begin. A read that
/// starts there skips the older records without reading them: with four
/// days of hours held (`VOUCH_SLA_BENCH_HOURS=96 cargo bench -p vouch-sla
/// --bench aggregate`), the uncached 24-hour leaderboard took 100 ms
/// without it and 75 ms with it (medians, run back to back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frozen<B> {
    bytes: Vec<u8>,
    /// The key the first record's delta counts from.
    base: u32,
    /// The last record's key.
    last: u32,
    len: u32,
    /// Keys back from the last that a recent read may start at.
    span: u32,
    /// The offset of the first record whose key is at least `last − span`
    /// (the last record's at worst), and the key its delta counts from.
    mark: (u32, u32),
    _bucket: PhantomData<B>,
}

impl<B> Frozen<B> {
    /// An empty store whose reads of the last `span` keys skip the records
    /// before them.
    pub(crate) fn new(span: u32) -> Frozen<B> {
        Frozen {
            bytes: Vec::new(),
            base: 0,
            last: 0,
            len: 0,
            span,
            mark: (0, 0),
            _bucket: PhantomData,
        }
    }
}

/// One record read from a [`Frozen`] store: its key, the bucket's bytes,
/// and the offsets where the record starts and where the next one does.
struct Record<'a> {
    key: u32,
    body: &'a [u8],
    at: usize,
    next: usize,
}

impl<B: Pack + Default> Frozen<B> {
    /// Records held.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether no record is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The last key, if any.
    pub(crate) fn last_key(&self) -> Option<u32> {
        (self.len > 0).then_some(self.last)
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
    }

    /// Appends `bucket` under `key`, which must exceed every key held (a
    /// key out of order is refused with `false` and nothing changes).
    pub(crate) fn push(&mut self, key: u32, bucket: &B) -> bool {
        if self.len > 0 && key <= self.last {
            return false;
        }
        if self.len == 0 {
            self.base = key;
            self.bytes.clear();
            self.mark = (0, key);
        }
        let mut body = Vec::new();
        bucket.pack(&mut body);
        let mut head = Vec::with_capacity(10);
        put(&mut head, u128::from(key - if self.len == 0 { self.base } else { self.last }));
        put(&mut head, body.len() as u128);
        // Exact growth: a store gains one record a minute or an hour and
        // lives for days, so doubling slack would be a third of its bytes.
        self.bytes.reserve_exact(head.len() + body.len());
        self.bytes.extend_from_slice(&head);
        self.bytes.extend_from_slice(&body);
        self.last = key;
        self.len += 1;
        // Past the records that fell out of the span (each once).
        let floor = key.saturating_sub(self.span);
        let (at, prev) = self.mark;
        let passed = self.records_from(at as usize, prev).take_while(|r| r.key < floor).last();
        // A store holds kilobytes; past 4 GiB the mark would stay behind,
        // which only makes reads start earlier.
        if let Some(r) = passed
            && let Ok(next) = u32::try_from(r.next)
        {
            self.mark = (next, r.key);
        }
        true
    }

    /// The records from offset `at`, where the key `prev` precedes, in key
    /// order.
    fn records_from(&self, at: usize, prev: u32) -> impl Iterator<Item = Record<'_>> {
        let mut rest: &[u8] = self.bytes.get(at..).unwrap_or_default();
        let mut key = prev;
        std::iter::from_fn(move || {
            let at = self.bytes.len() - rest.len();
            let body;
            (key, body) = read_record(&mut rest, key)?;
            Some(Record { key, body, at, next: self.bytes.len() - rest.len() })
        })
    }

    /// The records, in key order.
    fn records(&self) -> impl Iterator<Item = Record<'_>> {
        self.records_from(0, self.base)
    }

    /// Starts loading the records a read from key `start` on takes, to the
    /// store's end: a store's own allocation is a cache miss the processor
    /// cannot foresee. From the mark when `start` is among the last `span`
    /// keys, from the front otherwise. [`Frozen::fold_packed`] decides by
    /// the mark's record itself, which only the bytes being fetched hold,
    /// so the two can differ when `start` falls just before that record:
    /// a hint need not be exact, and the read is the same either way.
    pub(crate) fn prefetch_from(&self, start: u32) {
        let from = if start >= self.last.saturating_sub(self.span) { self.mark.0 } else { 0 };
        prefetch(self.bytes.get(from as usize..).unwrap_or_default());
    }

    /// Calls `f(key, packed bucket)` for every record with
    /// `start <= key < end`, in key order.
    pub(crate) fn fold_packed(&self, start: u32, end: u32, mut f: impl FnMut(u32, &[u8])) {
        if self.len == 0 || self.last < start {
            return;
        }
        // From the mark when the range starts at or after its record: every
        // record before it has a smaller key.
        let (at, prev) = self.mark;
        let marked_rest = self.bytes.get(at as usize..).unwrap_or_default();
        let mut first = marked_rest;
        let marked = read_record(&mut first, prev).is_some_and(|(k, _)| k <= start);
        // A loop of its own rather than `records_from`: the query's inner
        // loop, with no record offsets to work out.
        let (mut rest, mut key) =
            if marked { (marked_rest, prev) } else { (&self.bytes[..], self.base) };
        while let Some((k, body)) = read_record(&mut rest, key)
            && k < end
        {
            if k >= start {
                f(k, body);
            }
            key = k;
        }
    }

    /// Drops every record with a key below `min`.
    pub(crate) fn prune(&mut self, min: u32) {
        if self.len == 0 {
            return;
        }
        if self.last < min {
            *self = Frozen::new(self.span);
            return;
        }
        let mut previous = self.base;
        let mut cut = 0;
        let mut dropped = 0;
        for r in self.records() {
            if r.key >= min {
                cut = r.at;
                break;
            }
            previous = r.key;
            dropped += 1;
        }
        if dropped > 0 {
            self.bytes.drain(..cut);
            self.bytes.shrink_to_fit();
            self.base = previous;
            self.len -= dropped;
            // The mark's record stays, or it was cut and so was every
            // record before the span: the first one left starts it.
            let (at, prev) = self.mark;
            self.mark = match at.checked_sub(u32::try_from(cut).unwrap_or(u32::MAX)) {
                Some(at) => (at, prev),
                None => (0, previous),
            };
        }
    }

    /// Removes and returns the bucket under `key`, if held (rare: a late
    /// write to a sealed minute; the store is rebuilt without it).
    pub(crate) fn take(&mut self, key: u32) -> Option<B> {
        if self.len == 0 || key > self.last {
            return None;
        }
        let mut found = None;
        let mut rebuilt = Frozen::new(self.span);
        for r in self.records() {
            let mut b = B::default();
            b.unpack(r.body)?;
            if r.key == key {
                found = Some(b);
            } else {
                rebuilt.push(r.key, &b);
            }
        }
        if found.is_some() {
            *self = rebuilt;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Pack for u64 {
        fn pack(&self, out: &mut Vec<u8>) {
            put(out, u128::from(*self));
        }
        fn unpack(&mut self, mut bytes: &[u8]) -> Option<()> {
            *self = get64(&mut bytes)?;
            bytes.is_empty().then_some(())
        }
    }

    fn read(f: &Frozen<u64>, start: u32, end: u32) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        f.fold_packed(start, end, |k, body| {
            let mut v = 0;
            assert!(v.unpack(body).is_some());
            out.push((k, v));
        });
        out
    }

    fn keys(f: &Frozen<u64>) -> Vec<(u32, u64)> {
        read(f, 0, u32::MAX)
    }

    #[test]
    fn varints_round_trip_and_refuse_garbage() {
        for v in [0u128, 1, 127, 128, 300, u128::from(u64::MAX), u128::MAX] {
            let mut b = Vec::new();
            put(&mut b, v);
            let mut s: &[u8] = &b;
            assert_eq!(get(&mut s), Some(v));
            assert!(s.is_empty());
        }
        assert_eq!(get(&mut &[0x80u8][..]), None, "truncated");
        assert_eq!(get(&mut &[0xffu8; 20][..]), None, "too long");
        for v in [0u64, 127, 128, 1 << 35, u64::MAX] {
            let mut b = Vec::new();
            put(&mut b, u128::from(v));
            let mut s: &[u8] = &b;
            assert_eq!(get64(&mut s), Some(v));
            assert!(s.is_empty());
        }
        let mut big = Vec::new();
        put(&mut big, u128::from(u64::MAX) + 1);
        assert_eq!(get64(&mut &big[..]), None, "wider than u64");
        assert_eq!(get64(&mut &[0x80u8; 10][..]), None, "no end within ten bytes");
    }

    proptest::proptest! {
        /// `get64`, by its short paths or its loop, reads what the plain
        /// 128-bit reader reads where that fits ten bytes and a `u64`.
        #[test]
        fn get64_reads_as_get_does(
            lengths in proptest::collection::vec(1usize..=11, 1..8),
            values in proptest::collection::vec(proptest::num::u64::ANY, 8),
            tail in proptest::collection::vec(0u8..=255, 0..9),
        ) {
            // Varints of chosen lengths (continuation bytes where the
            // value runs out), then arbitrary bytes.
            let mut bytes = Vec::new();
            for (len, v) in lengths.iter().zip(&values) {
                for i in 0..*len {
                    let group = (v >> (7 * i.min(9))) as u8 & 0x7f;
                    bytes.push(if i + 1 < *len { group | 0x80 } else { group });
                }
            }
            bytes.extend_from_slice(&tail);
            let (mut fast, mut plain): (&[u8], &[u8]) = (&bytes, &bytes);
            loop {
                let at = plain.len();
                let expected = get(&mut plain)
                    .filter(|v| at - plain.len() <= 10 && u64::try_from(*v).is_ok());
                let got = get64(&mut fast);
                proptest::prop_assert_eq!(got.map(u128::from), expected);
                match got {
                    Some(_) => proptest::prop_assert_eq!(fast.len(), plain.len()),
                    None => break,
                }
            }
        }
    }

    #[test]
    fn push_fold_prune_take() {
        let mut f = Frozen::<u64>::new(60);
        for (k, v) in [(100, 1), (101, 200), (160, 0), (400, u64::MAX)] {
            assert!(f.push(k, &v));
        }
        assert!(!f.push(400, &5), "keys only ascend");
        assert_eq!(keys(&f), vec![(100, 1), (101, 200), (160, 0), (400, u64::MAX)]);
        assert_eq!(read(&f, 101, 400), vec![(101, 200), (160, 0)]);
        f.prune(150);
        assert_eq!(keys(&f), vec![(160, 0), (400, u64::MAX)]);
        assert_eq!(f.len(), 2);
        assert!(f.push(401, &7));
        assert_eq!(f.take(400), Some(u64::MAX));
        assert_eq!(f.take(400), None);
        assert_eq!(keys(&f), vec![(160, 0), (401, 7)]);
        f.prune(1_000);
        assert!(f.is_empty());
        assert!(f.push(5, &5), "an emptied store starts again anywhere");
        assert_eq!(keys(&f), vec![(5, 5)]);
    }

    proptest::proptest! {
        /// Whatever was pushed, pruned and taken, and whatever the span, a
        /// read of any range (from the mark or from the start) yields what
        /// the store holds in that range: the records of a plain list.
        #[test]
        fn reads_from_the_mark_see_what_the_store_holds(
            span in 0u32..40,
            steps in proptest::collection::vec((0u8..10, 1u32..30, 0u64..1_000), 1..80),
            ranges in proptest::collection::vec((0u32..80, 0u32..200), 1..12),
        ) {
            let mut f = Frozen::<u64>::new(span);
            let mut model: Vec<(u32, u64)> = Vec::new();
            let mut next = 100u32;
            for (op, gap, v) in steps {
                match op {
                    // Mostly pushes, some prunes and takes.
                    0 => {
                        let min = next.saturating_sub(gap * 3);
                        f.prune(min);
                        model.retain(|(k, _)| *k >= min);
                    }
                    1 => {
                        let key = next.saturating_sub(gap);
                        let at = model.iter().position(|(k, _)| *k == key);
                        proptest::prop_assert_eq!(f.take(key), at.map(|i| model.remove(i).1));
                    }
                    _ => {
                        next += gap;
                        proptest::prop_assert!(f.push(next, &v));
                        model.push((next, v));
                    }
                }
                // Ranges starting near the end: at, before and after the mark.
                for &(back, len) in &ranges {
                    let start = next.saturating_sub(back);
                    let expected: Vec<(u32, u64)> = model
                        .iter()
                        .filter(|(k, _)| (start..start + len).contains(k))
                        .copied()
                        .collect();
                    proptest::prop_assert_eq!(read(&f, start, start + len), expected);
                }
                // The last `span` keys are read from the mark.
                if let Some(&(last, _)) = model.last() {
                    let (at, prev) = f.mark;
                    let first = f.records_from(at as usize, prev).next().map(|r| r.key);
                    let recent = model.iter().find(|(k, _)| *k >= last.saturating_sub(span));
                    proptest::prop_assert_eq!(first, recent.map(|(k, _)| *k));
                }
            }
        }
    }
}
