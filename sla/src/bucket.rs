//! Minute and hour buckets: integer counters and sparse histograms per
//! (orchestrator, model, gateway region, origin), merged exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vouch_schema::Address;

use crate::histogram::Histogram;

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

/// Something buckets of a series can hold.
pub(crate) trait Mergeable: Default + Clone {
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

impl Mergeable for u64 {
    fn merge_from(&mut self, o: &Self) {
        *self = self.saturating_add(*o);
    }
}

/// Minute buckets (recent) and hour roll-ups (older) of one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Series<B> {
    /// By minute index (ms / 60,000).
    pub(crate) minutes: BTreeMap<u32, B>,
    /// By hour index (minute / 60); holds sealed minutes only.
    pub(crate) hours: BTreeMap<u32, B>,
}

impl<B: Mergeable> Series<B> {
    /// The open minute bucket `minute`.
    pub(crate) fn minute_mut(&mut self, minute: u32) -> &mut B {
        self.minutes.entry(minute).or_default()
    }

    /// Rolls minutes in `[from, to)` into their hours; returns them.
    pub(crate) fn seal(&mut self, from: u32, to: u32) -> Vec<(u32, &B)> {
        for (&m, b) in self.minutes.range(from..to) {
            self.hours.entry(m / HOUR_MINUTES).or_default().merge_from(b);
        }
        self.minutes.range(from..to).map(|(&m, b)| (m, b)).collect()
    }

    /// Drops minutes before `min_minute` and hours before `min_hour`.
    pub(crate) fn prune(&mut self, min_minute: u32, min_hour: u32) {
        self.minutes = self.minutes.split_off(&min_minute);
        self.hours = self.hours.split_off(&min_hour);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.minutes.is_empty() && self.hours.is_empty()
    }

    /// Calls `f(step_start_minute, bucket)` for every bucket covering
    /// `[start, end)` minutes: whole hours before the last hour boundary
    /// (when the range is longer than an hour), minutes after it.
    pub(crate) fn fold_range(&self, start: u32, end: u32, mut f: impl FnMut(u32, &B)) {
        let split =
            if end - start <= HOUR_MINUTES { start } else { end / HOUR_MINUTES * HOUR_MINUTES };
        if split > start {
            for (&h, b) in self.hours.range(start.div_ceil(HOUR_MINUTES)..split / HOUR_MINUTES) {
                f(h * HOUR_MINUTES, b);
            }
        }
        for (&m, b) in self.minutes.range(split..end) {
            f(m, b);
        }
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
