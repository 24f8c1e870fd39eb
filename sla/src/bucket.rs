//! Minute and hour buckets: integer counters and sparse histograms per
//! (orchestrator, model, gateway region, origin), merged exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vouch_schema::Address;

use crate::compact::{Frozen, Pack, get32, get64, put};
use crate::histogram::{Histogram, HistogramSum};

/// One minute, ms.
pub(crate) const MINUTE_MS: u64 = 60_000;

/// Minutes per hour bucket.
pub(crate) const HOUR_MINUTES: u32 = 60;

/// Additive counters of one bucket (every field sums when buckets merge).
/// Serialized as a plain array of its fields in declaration order (field
/// names would be most of a checkpoint's bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketCounters {
    /// Attempts whose startup was decided in the bucket.
    pub attempts: u64,
    /// Of those, the first attempt of their gateway session.
    pub sessions: u64,
    /// Attempts not excused (the denominators of the rates).
    pub scored_attempts: u64,
    /// Scored attempts that reached playable output (few processed segments).
    pub startup_successes: u64,
    /// Scored attempts that produced output (viable).
    pub viable: u64,
    /// Health signals received from scored attempts (expected: 3 each).
    pub signals: u64,
    /// Swaps charged to the orchestrator swapped away from.
    pub swaps: u64,
    /// `orchestrator_swap`s that went back to the same orchestrator.
    pub retries: u64,
    /// Runner restarts inside the orchestrator (not swaps).
    pub restarts: u64,
    /// Attempts that failed, excused failures excluded.
    pub failed: u64,
    /// Failed attempts that had reached playable output first.
    pub partial_successes: u64,
    /// Failed attempts by class, in `FailureClass::ALL` order (excused included).
    pub failures: [u64; 7],
    /// Inference time, ms.
    pub inference_ms: u64,
    /// Sum of PTFF samples, ms (for means).
    pub ptff_sum_ms: u64,
    /// Sum of E2E samples, ms (for means).
    pub e2e_sum_ms: u64,
    /// Sum of output fps samples, in hundredths of a frame per second.
    pub fps_sum_centi: u64,
    /// Sum of squared output fps samples, hundredths squared.
    pub fps_sq_sum_centi: u64,
}

/// Number of `u64`s in a serialized [`BucketCounters`].
const COUNTER_FIELDS: usize = 23;

impl BucketCounters {
    fn to_array(&self) -> [u64; COUNTER_FIELDS] {
        let f = &self.failures;
        [
            self.attempts,
            self.sessions,
            self.scored_attempts,
            self.startup_successes,
            self.viable,
            self.signals,
            self.swaps,
            self.retries,
            self.restarts,
            self.failed,
            self.partial_successes,
            f[0],
            f[1],
            f[2],
            f[3],
            f[4],
            f[5],
            f[6],
            self.inference_ms,
            self.ptff_sum_ms,
            self.fps_sum_centi,
            self.fps_sq_sum_centi,
            self.e2e_sum_ms,
        ]
    }

    fn from_array(a: [u64; COUNTER_FIELDS]) -> BucketCounters {
        BucketCounters {
            attempts: a[0],
            sessions: a[1],
            scored_attempts: a[2],
            startup_successes: a[3],
            viable: a[4],
            signals: a[5],
            swaps: a[6],
            retries: a[7],
            restarts: a[8],
            failed: a[9],
            partial_successes: a[10],
            failures: [a[11], a[12], a[13], a[14], a[15], a[16], a[17]],
            inference_ms: a[18],
            ptff_sum_ms: a[19],
            fps_sum_centi: a[20],
            fps_sq_sum_centi: a[21],
            e2e_sum_ms: a[22],
        }
    }

    fn merge(&mut self, o: &BucketCounters) {
        let s = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        s(&mut self.attempts, o.attempts);
        s(&mut self.sessions, o.sessions);
        s(&mut self.scored_attempts, o.scored_attempts);
        s(&mut self.startup_successes, o.startup_successes);
        s(&mut self.viable, o.viable);
        s(&mut self.signals, o.signals);
        s(&mut self.swaps, o.swaps);
        s(&mut self.retries, o.retries);
        s(&mut self.restarts, o.restarts);
        s(&mut self.failed, o.failed);
        s(&mut self.partial_successes, o.partial_successes);
        for (a, b) in self.failures.iter_mut().zip(o.failures) {
            s(a, b);
        }
        s(&mut self.inference_ms, o.inference_ms);
        s(&mut self.ptff_sum_ms, o.ptff_sum_ms);
        s(&mut self.e2e_sum_ms, o.e2e_sum_ms);
        s(&mut self.fps_sum_centi, o.fps_sum_centi);
        s(&mut self.fps_sq_sum_centi, o.fps_sq_sum_centi);
    }
}

impl Serialize for BucketCounters {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_array().serialize(s)
    }
}

impl<'de> Deserialize<'de> for BucketCounters {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <[u64; COUNTER_FIELDS]>::deserialize(d).map(BucketCounters::from_array)
    }
}

/// Counters and histograms of one key over one minute or hour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Bucket {
    pub(crate) c: BucketCounters,
    /// Prompt-to-first-frame, ms.
    pub(crate) ptff: Histogram,
    /// Startup (time to playable), ms.
    pub(crate) startup: Histogram,
    /// First-segment end to end, ms.
    pub(crate) e2e: Histogram,
    /// Output fps, hundredths.
    pub(crate) fps: Histogram,
}

impl Bucket {
    pub(crate) fn merge(&mut self, o: &Bucket) {
        self.c.merge(&o.c);
        self.ptff.merge(&o.ptff);
        self.startup.merge(&o.startup);
        self.e2e.merge(&o.e2e);
        self.fps.merge(&o.fps);
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.ptff.heap_bytes()
            + self.startup.heap_bytes()
            + self.e2e.heap_bytes()
            + self.fps.heap_bytes()
    }
}

/// What orchestrators and runners say about themselves, per orchestrator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SelfBucket {
    /// Self-reported output fps, hundredths.
    pub(crate) fps: Histogram,
    /// Sum of compute-efficiency samples, thousandths.
    pub(crate) cue_sum_milli: u64,
    /// Compute-efficiency samples.
    pub(crate) cue_count: u64,
    /// Samples by source: gpm, nvml, proxy.
    pub(crate) sources: [u64; 3],
}

impl SelfBucket {
    pub(crate) fn merge(&mut self, o: &SelfBucket) {
        self.fps.merge(&o.fps);
        self.cue_sum_milli = self.cue_sum_milli.saturating_add(o.cue_sum_milli);
        self.cue_count = self.cue_count.saturating_add(o.cue_count);
        for (a, b) in self.sources.iter_mut().zip(o.sources) {
            *a = a.saturating_add(b);
        }
    }
}

/// The order counters are packed in: those most buckets hold first (the
/// attempt counts, inference time and the sums), so that the mask of a
/// typical bucket fits two varint bytes; swaps, retries, restarts and
/// failures after.
const PACK_ORDER: [usize; COUNTER_FIELDS] =
    [0, 1, 2, 3, 4, 5, 18, 19, 20, 21, 22, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17];

/// Appends a mask of the non-zero counters (bit `j` for `PACK_ORDER[j]`),
/// then those counters.
fn pack_counters(a: &[u64; COUNTER_FIELDS], out: &mut Vec<u8>) {
    let mask = PACK_ORDER
        .iter()
        .enumerate()
        .filter(|(_, i)| a[**i] != 0)
        .fold(0u32, |m, (j, _)| m | 1 << j);
    put(out, u128::from(mask));
    for i in PACK_ORDER.iter().filter(|i| a[**i] != 0) {
        put(out, u128::from(a[*i]));
    }
}

/// Reads what [`pack_counters`] wrote, calling `f(field, value)` for each
/// non-zero counter.
#[inline]
fn unpack_counters(bytes: &mut &[u8], mut f: impl FnMut(usize, u64)) -> Option<()> {
    let mut mask = get32(bytes)?;
    if mask >> COUNTER_FIELDS != 0 {
        return None;
    }
    while mask != 0 {
        let j = mask.trailing_zeros() as usize;
        f(PACK_ORDER[j], get64(bytes)?);
        mask &= mask - 1;
    }
    Some(())
}

impl Pack for Bucket {
    /// The non-zero counters behind their mask, then the four histograms:
    /// most counters of a typical bucket are zero.
    fn pack(&self, out: &mut Vec<u8>) {
        pack_counters(&self.c.to_array(), out);
        for h in [&self.ptff, &self.startup, &self.e2e, &self.fps] {
            h.pack(out);
        }
    }

    fn unpack(&mut self, mut bytes: &[u8]) -> Option<()> {
        let mut a = [0u64; COUNTER_FIELDS];
        unpack_counters(&mut bytes, |i, v| a[i] = v)?;
        self.c = BucketCounters::from_array(a);
        for h in [&mut self.ptff, &mut self.startup, &mut self.e2e, &mut self.fps] {
            h.unpack(&mut bytes)?;
        }
        bytes.is_empty().then_some(())
    }
}

impl Pack for SelfBucket {
    fn pack(&self, out: &mut Vec<u8>) {
        self.fps.pack(out);
        for v in [self.cue_sum_milli, self.cue_count].iter().chain(&self.sources) {
            put(out, u128::from(*v));
        }
    }

    fn unpack(&mut self, mut bytes: &[u8]) -> Option<()> {
        self.fps.unpack(&mut bytes)?;
        self.cue_sum_milli = get64(&mut bytes)?;
        self.cue_count = get64(&mut bytes)?;
        for v in &mut self.sources {
            *v = get64(&mut bytes)?;
        }
        bytes.is_empty().then_some(())
    }
}

/// Something buckets of a series can hold: it merges exactly and packs
/// without loss.
pub(crate) trait Mergeable: Default + Clone + Pack {
    fn merge_from(&mut self, o: &Self);
}

impl Mergeable for Bucket {
    fn merge_from(&mut self, o: &Self) {
        self.merge(o);
    }
}

impl Mergeable for SelfBucket {
    fn merge_from(&mut self, o: &Self) {
        self.merge(o);
    }
}

/// Buckets that can still change, sorted by key in a vector sized to fit.
/// A series holds one or two (its unsealed minutes, the hour filling up);
/// a B-tree would allocate a node of eleven slots for them (~3.5 KiB with
/// a [`Bucket`]), and keep it allocated once emptied.
#[derive(Debug, Clone)]
struct Open<B>(Vec<(u32, B)>);

impl<B> Default for Open<B> {
    fn default() -> Open<B> {
        Open(Vec::new())
    }
}

impl<B: Default> Open<B> {
    /// The bucket under `key`, made empty if absent.
    fn entry(&mut self, key: u32) -> &mut B {
        let at = match self.0.binary_search_by_key(&key, |e| e.0) {
            Ok(at) => at,
            Err(at) => {
                self.0.reserve_exact(1);
                self.0.insert(at, (key, B::default()));
                at
            }
        };
        &mut self.0[at].1
    }

    /// Removes and returns the buckets with keys in `[from, to)`, in order.
    fn take(&mut self, from: u32, to: u32) -> Vec<(u32, B)> {
        let (a, b) = (self.bounds(from), self.bounds(to));
        if a >= b {
            return Vec::new();
        }
        let out = self.0.drain(a..b).collect();
        self.0.shrink_to_fit();
        out
    }

    /// The buckets with keys in `[from, to)`, in order.
    fn range(&self, from: u32, to: u32) -> impl Iterator<Item = (u32, &B)> {
        let (a, b) = (self.bounds(from), self.bounds(to).max(self.bounds(from)));
        self.0[a..b].iter().map(|(k, b)| (*k, b))
    }

    fn bounds(&self, key: u32) -> usize {
        self.0.partition_point(|e| e.0 < key)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Minute buckets (recent) and hour roll-ups (older) of one key.
///
/// Buckets that can still change are structs ([`Open`]): the minutes not
/// yet sealed and the hour that sealed minutes are still rolling into.
/// Sealed minutes and complete hours never change again, so they are
/// packed ([`Frozen`]): that is nearly all of a day's state. A snapshot
/// shows both as one `minutes` and one `hours` map, as before packing.
#[derive(Debug, Clone)]
pub(crate) struct Series<B> {
    /// Open minutes by minute index (ms / 60,000): unsealed ones, and any
    /// sealed minute a late write reopened (it is never rolled into an hour).
    open_minutes: Open<B>,
    /// Sealed minutes.
    minutes: Frozen<B>,
    /// Hours (minute / 60) still receiving sealed minutes.
    open_hours: Open<B>,
    /// Complete hours.
    hours: Frozen<B>,
}

/// The longest range of sealed minutes a query reads: its last hour (or
/// the part of an hour after the last whole one).
const RECENT_MINUTES: u32 = HOUR_MINUTES;
/// The longest range of complete hours read other than the whole store:
/// the 24-hour windows'.
const RECENT_HOURS: u32 = 24;

impl<B> Default for Series<B> {
    fn default() -> Series<B> {
        Series {
            open_minutes: Open::default(),
            minutes: Frozen::new(RECENT_MINUTES),
            open_hours: Open::default(),
            hours: Frozen::new(RECENT_HOURS),
        }
    }
}

impl<B: Mergeable> Series<B> {
    /// The open minute bucket `minute`.
    pub(crate) fn minute_mut(&mut self, minute: u32) -> &mut B {
        if self.minutes.last_key().is_some_and(|last| minute <= last)
            && let Some(b) = self.minutes.take(minute)
        {
            *self.open_minutes.entry(minute) = b;
        }
        self.open_minutes.entry(minute)
    }

    /// Rolls open minutes in `[from, to)` into their hours, calls `f` with
    /// each (in minute order), then packs them and every hour they completed.
    pub(crate) fn seal(&mut self, from: u32, to: u32, mut f: impl FnMut(u32, &B)) {
        // Minutes before `from` that are still open were reopened by a late
        // write: they stay minutes, as every sealed minute's hour is final.
        for (m, b) in self.open_minutes.take(from, to) {
            self.open_hours.entry(m / HOUR_MINUTES).merge_from(&b);
            f(m, &b);
            if !self.minutes.push(m, &b) {
                *self.open_minutes.entry(m) = b;
            }
        }
        self.freeze_hours(to / HOUR_MINUTES);
    }

    /// Packs hours before `hour` (all their minutes are sealed).
    fn freeze_hours(&mut self, hour: u32) {
        for (h, b) in self.open_hours.take(0, hour) {
            if !self.hours.push(h, &b) {
                *self.open_hours.entry(h) = b;
            }
        }
    }

    /// Packs what is sealed once `end` minutes are: used after a snapshot
    /// is read back, which holds every bucket as a struct.
    pub(crate) fn freeze(&mut self, end: u32) {
        for (m, b) in self.open_minutes.take(0, end) {
            if !self.minutes.push(m, &b) {
                *self.open_minutes.entry(m) = b;
            }
        }
        self.freeze_hours(end / HOUR_MINUTES);
    }

    /// Drops minutes before `min_minute` and hours before `min_hour`.
    pub(crate) fn prune(&mut self, min_minute: u32, min_hour: u32) {
        self.open_minutes.take(0, min_minute);
        self.minutes.prune(min_minute);
        self.open_hours.take(0, min_hour);
        self.hours.prune(min_hour);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.open_minutes.is_empty()
            && self.minutes.is_empty()
            && self.open_hours.is_empty()
            && self.hours.is_empty()
    }

    /// Minute buckets held.
    pub(crate) fn minute_count(&self) -> usize {
        self.open_minutes.len() + self.minutes.len()
    }

    /// Hour buckets held.
    pub(crate) fn hour_count(&self) -> usize {
        self.open_hours.len() + self.hours.len()
    }

    /// Approximate bytes held beyond the series' own struct, with
    /// `open_bytes` the size of one unpacked bucket.
    pub(crate) fn approx_bytes(&self, open_bytes: impl Fn(&B) -> usize) -> usize {
        let slot = std::mem::size_of::<(u32, B)>();
        self.open_minutes
            .0
            .iter()
            .chain(&self.open_hours.0)
            .map(|(_, b)| slot + open_bytes(b))
            .sum::<usize>()
            + self.minutes.heap_bytes()
            + self.hours.heap_bytes()
    }

    /// Calls `f(step_start_minute, bucket)` for every bucket covering
    /// `[start, end)` minutes, in time order: whole hours before the last
    /// hour boundary (when the range is longer than an hour), minutes after.
    pub(crate) fn fold_range(&self, start: u32, end: u32, mut f: impl FnMut(u32, &B)) {
        let mut scratch = B::default();
        self.walk(start, end, |m, slot| {
            let bucket = slot.read(&mut scratch);
            debug_assert!(bucket.is_some(), "a frozen record unpacks");
            if let Some(b) = bucket {
                f(m, b);
            }
        });
    }

    /// Starts loading the packed buckets [`Series::fold_range`] over
    /// `[start, end)` reads first (see [`Frozen::prefetch_from`]): a query
    /// asks for a few series ahead of the one it sums.
    pub(crate) fn prefetch_range(&self, start: u32, end: u32) {
        let split = split(start, end);
        if split > start {
            self.hours.prefetch_from(start.div_ceil(HOUR_MINUTES));
        }
        self.minutes.prefetch_from(split);
    }

    /// [`Series::fold_range`]'s buckets as they are held.
    fn walk(&self, start: u32, end: u32, mut f: impl FnMut(u32, Slot<'_, B>)) {
        let split = split(start, end);
        if split > start {
            let hours = start.div_ceil(HOUR_MINUTES)..split / HOUR_MINUTES;
            interleave(&self.hours, &self.open_hours, hours.start, hours.end, |h, slot| {
                f(h * HOUR_MINUTES, slot);
            });
        }
        interleave(&self.minutes, &self.open_minutes, split, end, f);
    }
}

/// Where a range of minutes `[start, end)` turns from whole hours to
/// minutes: the last hour boundary, or `start` when the range is an hour
/// or shorter (read as minutes only).
fn split(start: u32, end: u32) -> u32 {
    if end - start <= HOUR_MINUTES { start } else { end / HOUR_MINUTES * HOUR_MINUTES }
}

/// Calls `f` for every bucket of `packed` and `open` with a key in
/// `[start, end)`, in key order. Packed and open keys are distinct; open
/// ones usually follow the packed ones (the unsealed minutes, the filling
/// hour), but a reopened minute sits between them.
fn interleave<B: Pack + Default>(
    packed: &Frozen<B>,
    open: &Open<B>,
    start: u32,
    end: u32,
    mut f: impl FnMut(u32, Slot<'_, B>),
) {
    let mut open = open.range(start, end).peekable();
    packed.fold_packed(start, end, |k, b| {
        while let Some((o, ob)) = open.next_if(|(o, _)| *o < k) {
            f(o, Slot::Open(ob));
        }
        f(k, Slot::Packed(b));
    });
    for (o, ob) in open {
        f(o, Slot::Open(ob));
    }
}

/// A bucket as a series holds it.
enum Slot<'a, B> {
    Open(&'a B),
    Packed(&'a [u8]),
}

impl<'a, B: Pack> Slot<'a, B> {
    /// The bucket: the open one, or the packed one unpacked into `scratch`
    /// (`None` if the bytes are not a packed bucket).
    fn read<'s>(self, scratch: &'s mut B) -> Option<&'s B>
    where
        'a: 's,
    {
        match self {
            Slot::Open(b) => Some(b),
            Slot::Packed(bytes) => scratch.unpack(bytes).map(|()| &*scratch),
        }
    }
}

impl Series<Bucket> {
    /// Adds every bucket [`Series::fold_range`] would visit to `sum`,
    /// reading packed ones in place.
    pub(crate) fn sum_range(&self, start: u32, end: u32, sum: &mut BucketSum) {
        self.walk(start, end, |_, slot| match slot {
            Slot::Open(b) => sum.add(b),
            Slot::Packed(bytes) => {
                let added = sum.add_packed(bytes);
                debug_assert!(added.is_some(), "a frozen record unpacks");
            }
        });
    }
}

/// Buckets summed at once (see [`HistogramSum`]); equals their merge.
#[derive(Debug, Clone, Default)]
pub(crate) struct BucketSum {
    c: [u64; COUNTER_FIELDS],
    h: [HistogramSum; 4],
}

impl BucketSum {
    /// Adds `b`.
    pub(crate) fn add(&mut self, b: &Bucket) {
        for (acc, v) in self.c.iter_mut().zip(b.c.to_array()) {
            *acc = acc.saturating_add(v);
        }
        for (acc, h) in self.h.iter_mut().zip([&b.ptff, &b.startup, &b.e2e, &b.fps]) {
            acc.add(h);
        }
    }

    /// Adds a packed bucket.
    fn add_packed(&mut self, mut bytes: &[u8]) -> Option<()> {
        let c = &mut self.c;
        unpack_counters(&mut bytes, |i, v| c[i] = c[i].saturating_add(v))?;
        for acc in &mut self.h {
            acc.add_packed(&mut bytes)?;
        }
        bytes.is_empty().then_some(())
    }

    /// Whether the sum holds nothing a score reads: no counter and no fps
    /// sample (every latency sample comes with counters).
    pub(crate) fn is_blank(&self) -> bool {
        self.c.iter().all(|v| *v == 0) && self.h[3].is_empty()
    }

    /// Adds everything to `into` and empties `self` (keeping its room).
    pub(crate) fn drain_into(&mut self, into: &mut BucketSum) {
        for (acc, v) in into.c.iter_mut().zip(std::mem::take(&mut self.c)) {
            *acc = acc.saturating_add(v);
        }
        for (h, acc) in self.h.iter_mut().zip(&mut into.h) {
            h.drain_into(acc);
        }
    }

    /// Empties the sum, keeping its room.
    pub(crate) fn clear(&mut self) {
        self.c = [0; COUNTER_FIELDS];
        self.h.iter_mut().for_each(HistogramSum::clear);
    }

    /// The sum, as one bucket; the sum is left empty (keeping its room).
    pub(crate) fn finish(&mut self) -> Bucket {
        let [ptff, startup, e2e, fps] = self.h.each_mut().map(HistogramSum::finish);
        let c = BucketCounters::from_array(std::mem::take(&mut self.c));
        Bucket { c, ptff, startup, e2e, fps }
    }
}

/// Both parts of a series' minutes or hours, as one map in key order.
struct Joined<'a, B>(&'a Frozen<B>, &'a Open<B>);

impl<B: Mergeable + Serialize> Serialize for Joined<'_, B> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let mut map = s.serialize_map(Some(self.0.len() + self.1.len()))?;
        let mut result = Ok(());
        let mut scratch = B::default();
        interleave(self.0, self.1, 0, u32::MAX, |k, slot| {
            if result.is_ok() {
                result = match slot.read(&mut scratch) {
                    Some(b) => map.serialize_entry(&k, b),
                    // Never for bytes `Frozen::push` wrote; a snapshot
                    // missing a bucket would be worse than no snapshot.
                    None => Err(S::Error::custom("a packed bucket does not unpack")),
                };
            }
        });
        result?;
        map.end()
    }
}

impl<B: Mergeable + Serialize> Serialize for Series<B> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Series", 2)?;
        st.serialize_field("minutes", &Joined(&self.minutes, &self.open_minutes))?;
        st.serialize_field("hours", &Joined(&self.hours, &self.open_hours))?;
        st.end()
    }
}

impl<'de, B: Mergeable + Deserialize<'de>> Deserialize<'de> for Series<B> {
    /// Everything comes back open; [`Series::freeze`] packs what is sealed.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename = "Series", bound = "B: Deserialize<'de>")]
        struct Maps<B> {
            minutes: BTreeMap<u32, B>,
            hours: BTreeMap<u32, B>,
        }
        let Maps { minutes, hours } = Maps::deserialize(d)?;
        Ok(Series {
            open_minutes: Open(minutes.into_iter().collect()),
            open_hours: Open(hours.into_iter().collect()),
            ..Series::default()
        })
    }
}

/// A bucket key: orchestrator, canonical model, gateway region, origin.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct SeriesKey {
    pub(crate) orch: Address,
    pub(crate) model: String,
    pub(crate) region: String,
    /// `Origin::code()`.
    pub(crate) origin: u8,
}

impl SeriesKey {
    /// The smallest key of `orch`: where a range over its series starts.
    pub(crate) fn first_of(orch: Address) -> SeriesKey {
        SeriesKey { orch, model: String::new(), region: String::new(), origin: 0 }
    }
}

/// p50/p95/p99 of a histogram and its sample count; `null`s when empty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PercentileSummary {
    /// Median.
    pub p50: Option<u64>,
    /// 95th percentile.
    pub p95: Option<u64>,
    /// 99th percentile.
    pub p99: Option<u64>,
    /// Samples.
    pub count: u64,
}

impl PercentileSummary {
    pub(crate) fn of(h: &Histogram) -> PercentileSummary {
        PercentileSummary {
            p50: h.percentile(50.0),
            p95: h.percentile(95.0),
            p99: h.percentile(99.0),
            count: h.count(),
        }
    }
}

/// A minute bucket that just sealed: what a ClickHouse sink inserts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SealedBucket {
    /// Orchestrator scored.
    pub orchestrator: Address,
    /// Canonical model id.
    pub model_id: String,
    /// The model's pipeline.
    pub pipeline: String,
    /// Gateway region.
    pub region: String,
    /// `production` or `synthetic`.
    pub origin: &'static str,
    /// Start of the minute, ms.
    pub minute_start_ms: u64,
    /// The counters (serialized by name, failures by class).
    #[serde(serialize_with = "counters_by_name")]
    pub counters: BucketCounters,
    /// PTFF percentiles, ms.
    pub ptff_ms: PercentileSummary,
    /// Startup percentiles, ms.
    pub startup_ms: PercentileSummary,
    /// First-segment E2E percentiles, ms.
    pub e2e_ms: PercentileSummary,
    /// Output fps percentiles, hundredths of a frame per second.
    pub fps_centi: PercentileSummary,
}

/// [`BucketCounters`] as a JSON-style object: sinks want names, checkpoints don't.
fn counters_by_name<S: serde::Serializer>(c: &BucketCounters, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let a = c.to_array();
    let names = [
        "attempts",
        "sessions",
        "scored_attempts",
        "startup_successes",
        "viable",
        "signals",
        "swaps",
        "retries",
        "restarts",
        "failed",
        "partial_successes",
    ];
    let mut m = s.serialize_map(Some(names.len() + 6))?;
    for (name, v) in names.iter().zip(a) {
        m.serialize_entry(name, &v)?;
    }
    let failures: BTreeMap<&str, u64> = crate::policy::FailureClass::ALL
        .iter()
        .map(|k| (k.as_str(), c.failures[k.index()]))
        .collect();
    m.serialize_entry("failures", &failures)?;
    m.serialize_entry("inference_ms", &c.inference_ms)?;
    m.serialize_entry("ptff_sum_ms", &c.ptff_sum_ms)?;
    m.serialize_entry("e2e_sum_ms", &c.e2e_sum_ms)?;
    m.serialize_entry("fps_sum_centi", &c.fps_sum_centi)?;
    m.serialize_entry("fps_sq_sum_centi", &c.fps_sq_sum_centi)?;
    m.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(attempts: u64, ptff: &[u64]) -> Bucket {
        let mut b = Bucket::default();
        b.c.attempts = attempts;
        for v in ptff {
            b.ptff.record(*v);
        }
        b
    }

    fn visited(s: &Series<Bucket>, start: u32, end: u32) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        s.fold_range(start, end, |m, b| out.push((m, b.c.attempts)));
        out
    }

    #[test]
    fn sealed_buckets_pack_and_read_back_in_time_order() {
        let mut s = Series::<Bucket>::default();
        for (m, n) in [(60, 1), (61, 2), (119, 3), (120, 4), (130, 5)] {
            *s.minute_mut(m) = bucket(n, &[100 * n]);
        }
        let mut sealed = Vec::new();
        s.seal(60, 125, |m, b| sealed.push((m, b.c.attempts)));
        assert_eq!(sealed, vec![(60, 1), (61, 2), (119, 3), (120, 4)]);
        // Hour 1 is complete (packed), hour 2 still open; minute 130 is unsealed.
        assert_eq!((s.hours.len(), s.open_hours.len()), (1, 1));
        assert_eq!((s.minutes.len(), s.open_minutes.len()), (4, 1));
        assert_eq!(visited(&s, 60, 180), vec![(60, 6), (120, 4)]);
        assert_eq!(visited(&s, 61, 121), vec![(61, 2), (119, 3), (120, 4)]);
        assert_eq!(visited(&s, 100, 160), vec![(119, 3), (120, 4), (130, 5)]);

        // A write to a sealed minute reopens it between packed ones; it is
        // read back (and saved) in minute order and never joins its hour.
        s.minute_mut(61).c.attempts += 10;
        assert_eq!(visited(&s, 60, 120), vec![(60, 1), (61, 12), (119, 3)]);
        assert_eq!(visited(&s, 60, 180), vec![(60, 6), (120, 4)]);

        // A snapshot shows one map per grain, whatever is packed.
        let mut bytes = Vec::new();
        ciborium::into_writer(&s, &mut bytes).unwrap_or_default();
        let mut back: Series<Bucket> = ciborium::from_reader(&bytes[..]).unwrap_or_default();
        assert_eq!(back.minutes.len() + back.hours.len(), 0, "read back unpacked");
        back.freeze(125);
        let mut again = Vec::new();
        ciborium::into_writer(&back, &mut again).unwrap_or_default();
        assert_eq!(again, bytes);
        assert_eq!(visited(&back, 60, 120), visited(&s, 60, 120));
        assert_eq!(visited(&back, 60, 180), visited(&s, 60, 180));

        let mut sum = BucketSum::default();
        s.sum_range(60, 120, &mut sum);
        let mut merged = Bucket::default();
        s.fold_range(60, 120, |_, b| merged.merge(b));
        assert_eq!(sum.finish(), merged);

        s.prune(120, 2);
        assert_eq!(visited(&s, 100, 140), vec![(120, 4), (130, 5)]);
        s.prune(200, 3);
        assert!(s.is_empty());
    }
}
