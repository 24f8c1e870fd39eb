//! The GPU sampler: NVML readings as `gpu_stats` events (DESIGN.md §3.2, CUE).
//!
//! [`GpuSampler`] loads NVML at run time through `nvml-wrapper` (nothing links
//! against `libnvidia-ml`), so the SDK runs unchanged on boxes without an
//! NVIDIA driver or GPU. Each [`GpuSampler::sample`] returns one `gpu_stats`
//! event per GPU whose `data` holds what NVML could read:
//!
//! | field | meaning |
//! |---|---|
//! | `timestamp` | sample time, ms since the Unix epoch (the caller's clock) |
//! | `gpu_index` | NVML device index |
//! | `gpu` | keyed pseudonym of the GPU UUID: `"p:"` + 32 hex digits (see [`gpu_pseudonym`]) |
//! | `name` | product name, e.g. `NVIDIA H100 80GB HBM3` |
//! | `utilization_gpu_pct`, `utilization_memory_pct` | NVML utilization rates, percent |
//! | `memory_used_bytes`, `memory_total_bytes` | frame buffer memory |
//! | `power_mw`, `power_limit_mw` | power draw and the enforced limit, milliwatts |
//! | `sm_clock_mhz`, `mem_clock_mhz` | current clocks |
//! | `temperature_c` | GPU die temperature |
//! | `tensor_active_pct` | GPM "any tensor" activity since the previous sample (Hopper and newer only) |
//! | `source` | `gpm` when `tensor_active_pct` is present, else `nvml`; `proxy` without NVML |
//! | `source_reason` | why the source is `proxy` (only then) |
//!
//! A field NVML cannot read on a GPU is left out; reading errors never fail a
//! sample. Without NVML (no library, no driver, no GPU) a sample is a single
//! event `{timestamp, source: "proxy", source_reason}`: the verifier then
//! estimates compute efficiency from stream fps (DESIGN.md §8, CUE). That is a
//! normal state, logged once at `info` when the sampler is created.
//!
//! The raw GPU UUID is restricted data: it never leaves this module. Only its
//! keyed BLAKE3 pseudonym is written, so the same GPU maps to the same
//! pseudonym under one key and to unrelated ones under different keys.

use std::ffi::OsStr;
use std::fmt;
use std::sync::OnceLock;

use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::gpm::gpm_metrics_get;
use nvml_wrapper::{Device, GpmSample, Nvml};
use serde_json::{Map, Number, Value as Json};
use vouch_schema::{Event, Family};

/// The event family the sampler emits.
pub const GPU_STATS_FAMILY: &str = "gpu_stats";

/// Prefix of every GPU pseudonym.
pub const PSEUDONYM_PREFIX: &str = "p:";

/// Hex digits of the keyed hash kept in a pseudonym (128 bits).
pub const PSEUDONYM_HEX_LEN: usize = 32;

/// Where a `gpu_stats` sample's compute-efficiency figure comes from
/// (DESIGN.md §8, CUE), best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// GPM tensor-pipe activity (Hopper and newer).
    Gpm,
    /// NVML utilization rates only.
    Nvml,
    /// No NVML reading: consumers fall back to fps ÷ target fps.
    Proxy,
}

impl Source {
    /// The label written to `data.source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Gpm => "gpm",
            Source::Nvml => "nvml",
            Source::Proxy => "proxy",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The keyed pseudonym of a GPU UUID: `"p:"` followed by the first 32 hex
/// digits of `blake3::keyed_hash(key, uuid)`. Stable for one key and UUID;
/// without the key it cannot be linked back to the UUID.
pub fn gpu_pseudonym(key: &[u8; 32], uuid: &str) -> String {
    let hash = blake3::keyed_hash(key, uuid.as_bytes());
    let hex = hash.to_hex();
    let mut out = String::with_capacity(PSEUDONYM_PREFIX.len() + PSEUDONYM_HEX_LEN);
    out.push_str(PSEUDONYM_PREFIX);
    out.push_str(&hex[..PSEUDONYM_HEX_LEN]);
    out
}

/// Samples every NVIDIA GPU on the box into `gpu_stats` events.
///
/// Create one per process (NVML is loaded once and shared) and call
/// [`GpuSampler::sample`] periodically, e.g. every 10 s. The sampler is
/// `Send` but not `Sync`: one thread samples at a time. A call takes a few
/// NVML queries per GPU (typically well under a millisecond each), so it
/// should run on a background thread, never on a latency-critical path.
pub struct GpuSampler {
    key: [u8; 32],
    state: State,
}

enum State {
    /// NVML is loaded and reports at least one GPU.
    Nvml { nvml: &'static Nvml, gpus: Vec<GpuState> },
    /// No usable NVML; every sample is one `proxy` event with this reason.
    Proxy { reason: String },
}

/// What the sampler keeps per GPU between samples.
struct GpuState {
    index: u32,
    /// GPM is supported on this GPU.
    gpm_supported: bool,
    /// The GPM sample taken at the previous call (or at creation).
    gpm_previous: Option<GpmSample<'static>>,
}

impl fmt::Debug for GpuSampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pseudonym key is a secret: never print it.
        let mut s = f.debug_struct("GpuSampler");
        match &self.state {
            State::Nvml { gpus, .. } => {
                s.field("source", &"nvml").field("gpus", &gpus.len());
                let gpm = gpus.iter().filter(|g| g.gpm_supported).count();
                s.field("gpm_gpus", &gpm);
            }
            State::Proxy { reason } => {
                s.field("source", &"proxy").field("reason", reason);
            }
        }
        s.finish_non_exhaustive()
    }
}

/// NVML as loaded from the default library name, once per process.
static DEFAULT_NVML: OnceLock<Result<Nvml, String>> = OnceLock::new();

fn default_nvml() -> Result<&'static Nvml, String> {
    DEFAULT_NVML
        .get_or_init(|| Nvml::init().map_err(|e| describe_init_error(&e)))
        .as_ref()
        .map_err(|reason| reason.clone())
}

fn describe_init_error(error: &nvml_wrapper::error::NvmlError) -> String {
    use nvml_wrapper::error::NvmlError as E;
    match error {
        E::LibloadingError(e) => {
            format!("NVML library not loadable: {e}")
        }
        E::DriverNotLoaded => "NVIDIA driver not loaded".to_owned(),
        E::NoPermission => "no permission to access the NVIDIA driver".to_owned(),
        other => format!("NVML initialization failed: {other}"),
    }
}

impl GpuSampler {
    /// Loads NVML (`libnvidia-ml.so.1`) and enumerates the GPUs.
    ///
    /// Never fails: without a library, driver or GPU the sampler reports
    /// source `proxy` and logs why, once, at `info`. `pseudonym_key` keys the
    /// GPU UUID pseudonyms; keep it secret and stable across restarts so a
    /// GPU keeps its pseudonym.
    pub fn new(pseudonym_key: [u8; 32]) -> GpuSampler {
        GpuSampler::from_nvml(pseudonym_key, default_nvml())
    }

    /// Like [`GpuSampler::new`], loading NVML from `library_path` (a file name
    /// searched by the dynamic loader, or a path).
    ///
    /// Each call that succeeds keeps its own NVML handle loaded until the
    /// process exits; call it once per process.
    pub fn with_library_path(pseudonym_key: [u8; 32], library_path: &OsStr) -> GpuSampler {
        let loaded = Nvml::builder()
            .lib_path(library_path)
            .init()
            .map(|nvml| &*Box::leak(Box::new(nvml)))
            .map_err(|e| describe_init_error(&e));
        GpuSampler::from_nvml(pseudonym_key, loaded)
    }

    /// A sampler that always reports source `proxy` with `reason`, for boxes
    /// where GPU sampling is disabled on purpose.
    pub fn proxy(pseudonym_key: [u8; 32], reason: impl Into<String>) -> GpuSampler {
        GpuSampler { key: pseudonym_key, state: State::Proxy { reason: reason.into() } }
    }

    fn from_nvml(key: [u8; 32], nvml: Result<&'static Nvml, String>) -> GpuSampler {
        let state = match nvml {
            Err(reason) => State::Proxy { reason },
            Ok(nvml) => match nvml.device_count() {
                Err(e) => State::Proxy { reason: format!("NVML cannot count GPUs: {e}") },
                Ok(0) => State::Proxy { reason: "NVML loaded but reports no GPU".to_owned() },
                Ok(count) => {
                    let gpus = (0..count).map(|index| GpuState::open(nvml, index)).collect();
                    State::Nvml { nvml, gpus }
                }
            },
        };
        match &state {
            State::Proxy { reason } => {
                tracing::info!(%reason, "GPU sampler: no NVML readings; gpu_stats source is proxy");
            }
            State::Nvml { gpus, .. } => {
                let gpm = gpus.iter().filter(|g| g.gpm_supported).count();
                tracing::info!(gpus = gpus.len(), gpm_gpus = gpm, "GPU sampler: NVML loaded");
            }
        }
        GpuSampler { key, state }
    }

    /// The sampler's best source: `Nvml` when NVML is loaded (individual
    /// GPUs report `gpm` when they have GPM readings), `Proxy` otherwise.
    pub fn source(&self) -> Source {
        match self.state {
            State::Nvml { .. } => Source::Nvml,
            State::Proxy { .. } => Source::Proxy,
        }
    }

    /// Why the sampler reports `proxy`; `None` when NVML is loaded.
    pub fn proxy_reason(&self) -> Option<&str> {
        match &self.state {
            State::Nvml { .. } => None,
            State::Proxy { reason } => Some(reason),
        }
    }

    /// Number of GPUs sampled (0 in `proxy` mode).
    pub fn gpu_count(&self) -> usize {
        match &self.state {
            State::Nvml { gpus, .. } => gpus.len(),
            State::Proxy { .. } => 0,
        }
    }

    /// The pseudonym of `uuid` under this sampler's key (see [`gpu_pseudonym`]).
    pub fn pseudonym(&self, uuid: &str) -> String {
        gpu_pseudonym(&self.key, uuid)
    }

    /// Reads every GPU now: one `gpu_stats` event per GPU, or one `proxy`
    /// event without NVML. `now_ms` (ms since the Unix epoch) becomes each
    /// event's `timestamp`. Never fails; unreadable fields are left out.
    ///
    /// `tensor_active_pct` covers the interval since the previous call (or
    /// since the sampler was created), so it appears from the first call on,
    /// provided that interval is not too short for GPM (allow ~100 ms; a
    /// GPM reading that fails leaves the field out and the source `nvml`).
    pub fn sample(&mut self, now_ms: u64) -> Vec<Event> {
        let key = self.key;
        let datas: Vec<Json> = match &mut self.state {
            State::Proxy { reason } => vec![proxy_data(now_ms, reason)],
            State::Nvml { nvml, gpus } => {
                let nvml: &'static Nvml = nvml;
                gpus.iter_mut().map(|gpu| gpu.read(nvml, &key).to_data(now_ms)).collect()
            }
        };
        datas.into_iter().filter_map(|data| gpu_stats_event(data, now_ms)).collect()
    }
}

fn gpu_stats_event(data: Json, now_ms: u64) -> Option<Event> {
    match Event::from_type_and_data(GPU_STATS_FAMILY, data, now_ms) {
        Ok(event) => {
            debug_assert_eq!(event.family, Family::from_name(GPU_STATS_FAMILY));
            Some(event)
        }
        Err(e) => {
            // Unreachable: the data is a flat object and the family is valid.
            tracing::warn!(error = %e, "GPU sampler: could not build a gpu_stats event");
            None
        }
    }
}

fn proxy_data(now_ms: u64, reason: &str) -> Json {
    let mut data = Map::new();
    data.insert("timestamp".to_owned(), Json::from(now_ms));
    data.insert("source".to_owned(), Json::from(Source::Proxy.as_str()));
    data.insert("source_reason".to_owned(), Json::from(reason));
    Json::Object(data)
}

impl GpuState {
    fn open(nvml: &'static Nvml, index: u32) -> GpuState {
        let mut state = GpuState { index, gpm_supported: false, gpm_previous: None };
        match nvml.device_by_index(index) {
            Ok(device) => {
                state.gpm_supported = device.gpm_support().unwrap_or(false);
                if state.gpm_supported {
                    // The first interval starts now, so the first sample has GPM data.
                    state.gpm_previous = device.gpm_sample().ok();
                } else {
                    tracing::debug!(index, "GPU sampler: GPM not supported on this GPU");
                }
            }
            Err(e) => tracing::debug!(index, error = %e, "GPU sampler: cannot open GPU"),
        }
        state
    }

    /// Reads what NVML gives; every field is independent of the others.
    fn read(&mut self, nvml: &'static Nvml, key: &[u8; 32]) -> Reading {
        let mut reading = Reading { index: self.index, ..Reading::default() };
        let device = match nvml.device_by_index(self.index) {
            Ok(device) => device,
            Err(e) => {
                tracing::debug!(index = self.index, error = %e, "GPU sampler: cannot open GPU");
                self.gpm_previous = None;
                return reading;
            }
        };
        // The raw UUID lives only in this scope.
        reading.gpu = device.uuid().ok().map(|uuid| gpu_pseudonym(key, &uuid));
        reading.name = device.name().ok();
        if let Ok(rates) = device.utilization_rates() {
            reading.utilization_gpu_pct = Some(rates.gpu);
            reading.utilization_memory_pct = Some(rates.memory);
        }
        if let Ok(memory) = device.memory_info() {
            reading.memory_used_bytes = Some(memory.used);
            reading.memory_total_bytes = Some(memory.total);
        }
        reading.power_mw = device.power_usage().ok();
        reading.power_limit_mw = device.enforced_power_limit().ok();
        reading.sm_clock_mhz = device.clock_info(Clock::SM).ok();
        reading.mem_clock_mhz = device.clock_info(Clock::Memory).ok();
        reading.temperature_c = device.temperature(TemperatureSensor::Gpu).ok();
        if self.gpm_supported {
            reading.tensor_active_pct = self.read_gpm(nvml, &device);
        }
        reading
    }

    /// Any-tensor activity between the previous GPM sample and now; the new
    /// sample becomes the previous one.
    fn read_gpm(&mut self, nvml: &'static Nvml, device: &Device<'static>) -> Option<f64> {
        let current = device.gpm_sample().ok();
        let previous = self.gpm_previous.take();
        let value = match (&previous, &current) {
            (Some(previous), Some(current)) => {
                gpm_metrics_get(nvml, previous, current, &[GpmMetricId::AnyTensorUtil])
                    .ok()
                    .and_then(|results| results.into_iter().next())
                    .and_then(Result::ok)
                    .map(|result| result.value)
                    .filter(|value| value.is_finite())
            }
            _ => None,
        };
        self.gpm_previous = current;
        value
    }
}

/// One GPU's readings; absent fields could not be read.
#[derive(Debug, Default, Clone, PartialEq)]
struct Reading {
    index: u32,
    /// The pseudonym, never the UUID.
    gpu: Option<String>,
    name: Option<String>,
    utilization_gpu_pct: Option<u32>,
    utilization_memory_pct: Option<u32>,
    memory_used_bytes: Option<u64>,
    memory_total_bytes: Option<u64>,
    power_mw: Option<u32>,
    power_limit_mw: Option<u32>,
    sm_clock_mhz: Option<u32>,
    mem_clock_mhz: Option<u32>,
    temperature_c: Option<u32>,
    tensor_active_pct: Option<f64>,
}

impl Reading {
    fn source(&self) -> Source {
        if self.tensor_active().is_some() { Source::Gpm } else { Source::Nvml }
    }

    /// The GPM figure, when it is a finite number.
    fn tensor_active(&self) -> Option<Number> {
        self.tensor_active_pct.and_then(Number::from_f64)
    }

    fn to_data(&self, now_ms: u64) -> Json {
        let mut data = Map::new();
        let mut put = |name: &str, value: Option<Json>| {
            if let Some(value) = value {
                data.insert(name.to_owned(), value);
            }
        };
        put("timestamp", Some(Json::from(now_ms)));
        put("gpu_index", Some(Json::from(self.index)));
        put("gpu", self.gpu.clone().map(Json::from));
        put("name", self.name.clone().map(Json::from));
        put("utilization_gpu_pct", self.utilization_gpu_pct.map(Json::from));
        put("utilization_memory_pct", self.utilization_memory_pct.map(Json::from));
        put("memory_used_bytes", self.memory_used_bytes.map(Json::from));
        put("memory_total_bytes", self.memory_total_bytes.map(Json::from));
        put("power_mw", self.power_mw.map(Json::from));
        put("power_limit_mw", self.power_limit_mw.map(Json::from));
        put("sm_clock_mhz", self.sm_clock_mhz.map(Json::from));
        put("mem_clock_mhz", self.mem_clock_mhz.map(Json::from));
        put("temperature_c", self.temperature_c.map(Json::from));
        put("tensor_active_pct", self.tensor_active().map(Json::Number));
        put("source", Some(Json::from(self.source().as_str())));
        Json::Object(data)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const UUID: &str = "GPU-5f3a2c1e-8b7d-4e6f-9a0b-1c2d3e4f5a6b";

    fn assert_send<T: Send>() {}

    #[test]
    fn sampler_is_send() {
        assert_send::<GpuSampler>();
    }

    #[test]
    fn pseudonym_is_stable_keyed_and_hides_the_uuid() {
        let p = gpu_pseudonym(&KEY, UUID);
        assert_eq!(p, gpu_pseudonym(&KEY, UUID), "same key and UUID, same pseudonym");
        assert_eq!(p.len(), 2 + 32);
        assert!(p.starts_with("p:"));
        assert!(p[2..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let expected = format!("p:{}", &blake3::keyed_hash(&KEY, UUID.as_bytes()).to_hex()[..32]);
        assert_eq!(p, expected);
        assert_ne!(p, gpu_pseudonym(&[8; 32], UUID), "another key, another pseudonym");
        assert_ne!(p, gpu_pseudonym(&KEY, "GPU-00000000-0000-0000-0000-000000000000"));
        assert!(!p.contains("5f3a2c1e"));
        assert_eq!(GpuSampler::proxy(KEY, "off").pseudonym(UUID), p);
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let sampler = GpuSampler::proxy([0xab; 32], "disabled");
        let text = format!("{sampler:?}");
        assert!(text.contains("proxy") && text.contains("disabled"));
        assert!(!text.contains("171"), "{text}"); // 0xab
        assert!(!text.to_lowercase().contains("abab"), "{text}");
    }

    #[test]
    fn proxy_sampler_emits_one_proxy_event_with_its_reason() {
        let mut sampler = GpuSampler::proxy(KEY, "GPU sampling disabled by config");
        assert_eq!(sampler.source(), Source::Proxy);
        assert_eq!(sampler.gpu_count(), 0);
        let events = sampler.sample(1_700_000_000_123);
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.family, Family::GpuStats);
        assert_eq!(event.ts, Some(1_700_000_000_123));
        assert_eq!(
            event.data,
            serde_json::json!({
                "timestamp": 1_700_000_000_123_u64,
                "source": "proxy",
                "source_reason": "GPU sampling disabled by config",
            })
        );
        event.validate().unwrap();
    }

    /// This machine has no GPU: the default sampler must come up in proxy
    /// mode with a reason. On a GPU machine the same test checks the NVML path.
    #[test]
    fn default_sampler_works_with_or_without_a_gpu() {
        let mut sampler = GpuSampler::new(KEY);
        let events = sampler.sample(42);
        match sampler.source() {
            Source::Proxy => {
                let reason = sampler.proxy_reason().unwrap();
                assert!(!reason.is_empty());
                assert_eq!(events.len(), 1);
                assert_eq!(events[0].data["source"], "proxy");
                assert_eq!(events[0].data["source_reason"], reason);
            }
            _ => {
                assert_eq!(events.len(), sampler.gpu_count());
                for (i, event) in events.iter().enumerate() {
                    assert_eq!(event.data["gpu_index"], i);
                    let source = event.data["source"].as_str().unwrap();
                    assert!(source == "nvml" || source == "gpm", "{source}");
                    assert!(event.data.get("source_reason").is_none());
                    assert!(event.data["gpu"].as_str().unwrap().starts_with("p:"));
                    assert!(!event.to_kafka_json().to_string().contains("GPU-"));
                }
            }
        }
        // A second sample works the same way (and logs nothing new).
        assert_eq!(sampler.sample(43).len(), events.len());
    }

    #[test]
    fn missing_library_is_proxy_with_a_reason() {
        let mut sampler =
            GpuSampler::with_library_path(KEY, OsStr::new("/nonexistent/libnvidia-ml.so.1"));
        assert_eq!(sampler.source(), Source::Proxy);
        let reason = sampler.proxy_reason().unwrap();
        assert!(reason.contains("not loadable"), "{reason}");
        let events = sampler.sample(1);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data["source"], "proxy");
    }

    #[test]
    fn full_reading_has_every_field_in_order_and_gpm_source() {
        let reading = Reading {
            index: 1,
            gpu: Some(gpu_pseudonym(&KEY, UUID)),
            name: Some("NVIDIA H100 80GB HBM3".to_owned()),
            utilization_gpu_pct: Some(87),
            utilization_memory_pct: Some(40),
            memory_used_bytes: Some(30 << 30),
            memory_total_bytes: Some(80 << 30),
            power_mw: Some(512_000),
            power_limit_mw: Some(700_000),
            sm_clock_mhz: Some(1980),
            mem_clock_mhz: Some(2619),
            temperature_c: Some(61),
            tensor_active_pct: Some(33.25),
        };
        let data = reading.to_data(5);
        let keys: Vec<&str> = data.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "timestamp",
                "gpu_index",
                "gpu",
                "name",
                "utilization_gpu_pct",
                "utilization_memory_pct",
                "memory_used_bytes",
                "memory_total_bytes",
                "power_mw",
                "power_limit_mw",
                "sm_clock_mhz",
                "mem_clock_mhz",
                "temperature_c",
                "tensor_active_pct",
                "source",
            ]
        );
        assert_eq!(data["source"], "gpm");
        assert_eq!(data["tensor_active_pct"], 33.25);
        let event = gpu_stats_event(data, 5).unwrap();
        event.validate().unwrap();
        let text = event.to_kafka_json().to_string();
        assert!(!text.contains(UUID));
        assert!(!text.contains("5f3a2c1e"));
    }

    #[test]
    fn unreadable_fields_are_absent_and_source_is_nvml() {
        let reading = Reading {
            index: 0,
            utilization_gpu_pct: Some(3),
            tensor_active_pct: Some(f64::NAN),
            ..Reading::default()
        };
        // A non-finite GPM figure is dropped, and the source falls back to nvml.
        assert_eq!(
            reading.to_data(9),
            serde_json::json!({
                "timestamp": 9,
                "gpu_index": 0,
                "utilization_gpu_pct": 3,
                "source": "nvml",
            })
        );
        let bare = Reading { index: 2, ..Reading::default() }.to_data(9);
        assert_eq!(bare, serde_json::json!({"timestamp": 9, "gpu_index": 2, "source": "nvml"}));
    }
}
