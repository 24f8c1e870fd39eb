//! Telemetry events (DESIGN.md §3.2): one go-livepeer-shaped event each.
//!
//! An [`Event`] is go-livepeer's Kafka event, kept losslessly, plus a
//! normalized header of correlation fields (`ts`, `stream_id`, `request_id`,
//! …) so that consumers need not know each family's field names. The adapter
//! ([`Event::from_kafka_json`], [`Event::from_type_and_data`]) fills the header
//! from the untidy go-livepeer `data` (numbers as strings, empty strings for
//! "unknown", nulls) without ever failing on a field it cannot read: such a
//! field simply stays in the body. [`Event::to_kafka_json`] rebuilds the
//! original Kafka JSON.
//!
//! On the wire an event is a deterministic CBOR map with small integer keys;
//! `schemas/telemetry.cddl` (rule `event`) is the normative description. The
//! body is carried as a JSON-equivalent CBOR value (null, bool, 64-bit
//! integer, finite float, text, array, map with text keys).

use std::fmt;
use std::hash::{Hash, Hasher};

use ciborium::Value as Cbor;
use serde_json::{Map, Number, Value as Json};

use crate::Address;
use crate::cbor::{self, CborError, MapError};

/// Longest family name (the Kafka envelope's `type`), in bytes.
pub const MAX_FAMILY_LEN: usize = 64;

/// Longest text of a normalized header field (`subtype`, `stream_id`, …), in
/// bytes. Longer values found in `data` are left out of the header (they stay
/// in the body); longer values on the wire are an error.
pub const MAX_FIELD_LEN: usize = 256;

/// Deepest nesting of arrays and maps inside one JSON value (`data`, or one
/// member of the Kafka envelope). A scalar has depth 0, `[]` and `{}` depth 1,
/// `{"a": [1]}` depth 2. go-livepeer's deepest event has depth 4.
pub const MAX_JSON_DEPTH: usize = 32;

/// Integer keys of the event map. They never change meaning.
mod key {
    pub(super) const FAMILY: u64 = 0;
    pub(super) const DATA: u64 = 1;
    pub(super) const TS: u64 = 2;
    pub(super) const SUBTYPE: u64 = 3;
    pub(super) const STREAM_ID: u64 = 4;
    pub(super) const REQUEST_ID: u64 = 5;
    pub(super) const MANIFEST_ID: u64 = 6;
    pub(super) const PIPELINE_ID: u64 = 7;
    pub(super) const MODEL_ID: u64 = 8;
    pub(super) const ORCHESTRATOR: u64 = 9;
    pub(super) const GATEWAY_REGION: u64 = 10;
    pub(super) const ORIGIN: u64 = 11;
    pub(super) const KAFKA: u64 = 12;
    pub(super) const ALL: [u64; 13] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    /// Field names, indexed by key, for error messages.
    pub(super) const NAMES: [&str; 13] = [
        "family",
        "data",
        "ts",
        "subtype",
        "stream_id",
        "request_id",
        "manifest_id",
        "pipeline_id",
        "model_id",
        "orchestrator",
        "gateway_region",
        "origin",
        "kafka",
    ];
}

/// An event family: the go-livepeer Kafka envelope's `type`.
///
/// Unknown families are carried as [`Family::Other`]. Build families with
/// [`Family::from_name`] (or `From<&str>`); equality and hashing go by
/// [`Family::as_str`], so `Other("stream_trace")` equals `StreamTrace`.
#[derive(Debug, Clone)]
pub enum Family {
    /// `stream_trace`: stream lifecycle milestones; the subtype is `data.type`.
    StreamTrace,
    /// `ai_stream_status`: the runner's periodic status, routed by the gateway.
    AiStreamStatus,
    /// `ai_stream_events`: `params_update`, `error`, runner `restart`, ….
    AiStreamEvents,
    /// `stream_ingest_metrics`: WHIP ingest stats, every 5 s.
    StreamIngestMetrics,
    /// `discovery_results`: orchestrators discovered, with latencies (`data` is an array).
    DiscoveryResults,
    /// `network_capabilities`: orchestrators' capabilities and hardware (`data` is an array).
    NetworkCapabilities,
    /// `create_new_payment`: a probabilistic-micropayment ticket batch.
    CreateNewPayment,
    /// `gpu_stats` (Vouch): GPU samples with their source.
    GpuStats,
    /// `probe` (Vouch): load-test markers.
    Probe,
    /// Any other family, carried unchanged.
    Other(String),
}

impl Family {
    /// Every family this version names, in key order of the docs.
    pub const KNOWN: [Family; 9] = [
        Family::StreamTrace,
        Family::AiStreamStatus,
        Family::AiStreamEvents,
        Family::StreamIngestMetrics,
        Family::DiscoveryResults,
        Family::NetworkCapabilities,
        Family::CreateNewPayment,
        Family::GpuStats,
        Family::Probe,
    ];

    /// The family named `name` (case-sensitive, as go-livepeer writes it).
    pub fn from_name(name: &str) -> Family {
        match name {
            "stream_trace" => Family::StreamTrace,
            "ai_stream_status" => Family::AiStreamStatus,
            "ai_stream_events" => Family::AiStreamEvents,
            "stream_ingest_metrics" => Family::StreamIngestMetrics,
            "discovery_results" => Family::DiscoveryResults,
            "network_capabilities" => Family::NetworkCapabilities,
            "create_new_payment" => Family::CreateNewPayment,
            "gpu_stats" => Family::GpuStats,
            "probe" => Family::Probe,
            other => Family::Other(other.to_owned()),
        }
    }

    /// The family's name, as on the wire and in Kafka.
    pub fn as_str(&self) -> &str {
        match self {
            Family::StreamTrace => "stream_trace",
            Family::AiStreamStatus => "ai_stream_status",
            Family::AiStreamEvents => "ai_stream_events",
            Family::StreamIngestMetrics => "stream_ingest_metrics",
            Family::DiscoveryResults => "discovery_results",
            Family::NetworkCapabilities => "network_capabilities",
            Family::CreateNewPayment => "create_new_payment",
            Family::GpuStats => "gpu_stats",
            Family::Probe => "probe",
            Family::Other(name) => name,
        }
    }
}

impl From<&str> for Family {
    fn from(name: &str) -> Family {
        Family::from_name(name)
    }
}

impl PartialEq for Family {
    fn eq(&self, other: &Family) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Family {}

impl Hash for Family {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an event comes from real traffic or from a load test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Real traffic (wire code 0).
    Production,
    /// Synthetic load (probes, load tests; wire code 1).
    Synthetic,
}

impl Origin {
    /// `"production"` or `"synthetic"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Production => "production",
            Origin::Synthetic => "synthetic",
        }
    }

    /// Parses [`Origin::as_str`]'s form.
    pub fn from_name(name: &str) -> Option<Origin> {
        match name {
            "production" => Some(Origin::Production),
            "synthetic" => Some(Origin::Synthetic),
            _ => None,
        }
    }

    /// The wire code: 0 production, 1 synthetic.
    pub fn code(self) -> u64 {
        match self {
            Origin::Production => 0,
            Origin::Synthetic => 1,
        }
    }

    /// The origin with wire code `code`.
    pub fn from_code(code: u64) -> Option<Origin> {
        match code {
            0 => Some(Origin::Production),
            1 => Some(Origin::Synthetic),
            _ => None,
        }
    }
}

/// One telemetry event: go-livepeer's event, losslessly, plus a normalized
/// header. The header is filled by the adapter and may be set by the SDK
/// (e.g. `origin`, `gateway_region`); decoding never re-derives it from `data`.
///
/// Every field is public; an event built or changed by hand should pass
/// [`Event::validate`] before it is encoded, or its bytes will not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The family (Kafka envelope `type`).
    pub family: Family,
    /// Event time, ms since the Unix epoch: `data.timestamp`, else the Kafka
    /// envelope's `timestamp`, else the caller's fallback.
    pub ts: Option<u64>,
    /// The subtype: `data.type` (e.g. `gateway_receive_stream_request`, `status`, `error`).
    pub subtype: Option<String>,
    /// go-livepeer's `stream_id` (client/app stream).
    pub stream_id: Option<String>,
    /// Gateway session id (`request_id`, or `requestID` in payments), constant across swaps.
    pub request_id: Option<String>,
    /// Orchestrator session id, one per orchestrator attempt (`manifest_id`).
    pub manifest_id: Option<String>,
    /// go-livepeer's `pipeline_id`.
    pub pipeline_id: Option<String>,
    /// The model id: go-livepeer's `pipeline` (or `model_id`).
    pub model_id: Option<String>,
    /// The orchestrator's address (`orchestrator_info.address`).
    pub orchestrator: Option<Address>,
    /// The gateway's region (`gateway_region`; usually set by the SDK).
    pub gateway_region: Option<String>,
    /// Production or synthetic (`origin`; usually set by the SDK).
    pub origin: Option<Origin>,
    /// The family's body: go-livepeer's `data`, unchanged (may be any JSON value).
    pub data: Json,
    /// The Kafka envelope's members other than `type` and `data` (normally
    /// `id`, `timestamp`, `gateway`), verbatim; `None` when the event did not
    /// come from Kafka JSON.
    pub kafka_envelope: Option<Map<String, Json>>,
}

/// Why JSON or CBOR is not an event. Each malformed case has its own variant,
/// with a stable message, so verifiers can count rejections by reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The Kafka JSON is not an object.
    #[error("a go-livepeer event must be a JSON object")]
    NotAnObject,
    /// Not deterministic CBOR (standalone [`Event::decode`] only).
    #[error("event CBOR: {0}")]
    Cbor(#[from] CborError),
    /// Not a map with known unsigned integer keys.
    #[error("event structure: {0}")]
    Structure(#[from] MapError),
    /// A key appears twice in the event map.
    #[error("event key {0} appears twice")]
    DuplicateKey(u64),
    /// A required field (`type`/`data` in JSON; `family`/`data` in CBOR) is absent.
    #[error("event field {0} is missing")]
    Missing(&'static str),
    /// A field has the wrong type.
    #[error("event field {0} has the wrong type")]
    WrongType(&'static str),
    /// A text field is empty (absent is how "unknown" is written).
    #[error("event field {0} is empty")]
    Empty(&'static str),
    /// A field is longer than its limit.
    #[error("event field {field} is {len} bytes, over the {max}-byte limit")]
    Oversize {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A fixed-size byte field has the wrong length.
    #[error("event field {field} must be {expected} bytes, got {actual}")]
    WrongLength {
        /// The field.
        field: &'static str,
        /// Its required length.
        expected: usize,
        /// The length found.
        actual: usize,
    },
    /// An origin code other than 0 or 1.
    #[error("unknown origin code {0}")]
    UnknownOrigin(u64),
    /// The Kafka envelope map holds `type` or `data`, which have their own keys.
    #[error("kafka envelope member {0:?} is reserved")]
    ReservedMember(String),
    /// A JSON value nests deeper than [`MAX_JSON_DEPTH`].
    #[error("JSON value nests deeper than {MAX_JSON_DEPTH}")]
    TooDeep,
    /// A CBOR value outside the JSON subset (the reason is one of a fixed set).
    #[error("CBOR value outside the JSON subset: {0}")]
    NotJson(&'static str),
    /// A JSON map holds a key twice.
    #[error("JSON map key {0:?} appears twice")]
    DuplicateJsonKey(String),
}

impl Event {
    /// Converts one event as go-livepeer writes it to Kafka:
    /// `{id, type, timestamp, gateway, data}`. Only a non-object, a missing,
    /// non-text, empty or over-long `type`, a missing `data`, or a value nested
    /// deeper than [`MAX_JSON_DEPTH`] are errors; everything else is kept.
    pub fn from_kafka_json(json: &Json) -> Result<Event, EventError> {
        let Json::Object(obj) = json else {
            return Err(EventError::NotAnObject);
        };
        let family = match obj.get("type") {
            Some(Json::String(name)) => family_from_name(name, "type")?,
            Some(_) => return Err(EventError::WrongType("type")),
            None => return Err(EventError::Missing("type")),
        };
        let data = obj.get("data").ok_or(EventError::Missing("data"))?;
        check_depth(data)?;
        let mut envelope = Map::new();
        for (name, value) in obj {
            if name != "type" && name != "data" {
                check_depth(value)?;
                envelope.insert(name.clone(), value.clone());
            }
        }
        let fallback = envelope.get("timestamp").and_then(lenient::as_timestamp);
        let mut event = Event::normalize(family, data.clone(), fallback);
        event.kafka_envelope = Some(envelope);
        Ok(event)
    }

    /// Converts the pair go-livepeer's `monitor.SendQueueEventAsync(type, data)`
    /// receives. `ts_fallback` (ms) is used when `data` has no usable `timestamp`.
    pub fn from_type_and_data(
        family: &str,
        data: Json,
        ts_fallback: u64,
    ) -> Result<Event, EventError> {
        let family = family_from_name(family, "type")?;
        check_depth(&data)?;
        Ok(Event::normalize(family, data, Some(ts_fallback)))
    }

    /// Fills the normalized header from `data` (see the `event` rule in
    /// `telemetry.cddl` for the exact extraction rules).
    fn normalize(family: Family, data: Json, ts_fallback: Option<u64>) -> Event {
        let field = |name: &str| header_text(data.get(name));
        let ts = data.get("timestamp").and_then(lenient::as_timestamp).or(ts_fallback);
        Event {
            ts,
            subtype: field("type"),
            stream_id: field("stream_id"),
            request_id: field("request_id").or_else(|| field("requestID")),
            manifest_id: field("manifest_id"),
            pipeline_id: field("pipeline_id"),
            model_id: field("pipeline").or_else(|| field("model_id")),
            orchestrator: data
                .pointer("/orchestrator_info/address")
                .and_then(lenient::as_text)
                .and_then(|a| a.parse().ok()),
            gateway_region: field("gateway_region"),
            origin: data.get("origin").and_then(lenient::as_text).and_then(Origin::from_name),
            family,
            data,
            kafka_envelope: None,
        }
    }

    /// Rebuilds go-livepeer's Kafka JSON: `{id, type, timestamp, gateway, data}`
    /// from the kept envelope members (any others follow). An event that did
    /// not come from Kafka gets `{type, timestamp, data}`, `timestamp` being
    /// `ts` as a decimal string (go-livepeer's form), omitted when unknown.
    /// The normalized header is not written: it is derived from `data`.
    pub fn to_kafka_json(&self) -> Json {
        let mut out = Map::new();
        let family = Json::String(self.family.as_str().to_owned());
        match &self.kafka_envelope {
            Some(envelope) => {
                if let Some(id) = envelope.get("id") {
                    out.insert("id".to_owned(), id.clone());
                }
                out.insert("type".to_owned(), family);
                for name in ["timestamp", "gateway"] {
                    if let Some(value) = envelope.get(name) {
                        out.insert(name.to_owned(), value.clone());
                    }
                }
                out.insert("data".to_owned(), self.data.clone());
                for (name, value) in envelope {
                    if !out.contains_key(name) {
                        out.insert(name.clone(), value.clone());
                    }
                }
            }
            None => {
                out.insert("type".to_owned(), family);
                if let Some(ts) = self.ts {
                    out.insert("timestamp".to_owned(), Json::String(ts.to_string()));
                }
                out.insert("data".to_owned(), self.data.clone());
            }
        }
        Json::Object(out)
    }

    /// The subtype (`data.type`), e.g. `gateway_receive_first_processed_segment`.
    pub fn subtype(&self) -> Option<&str> {
        self.subtype.as_deref()
    }

    /// The family's body, go-livepeer's `data`.
    pub fn data(&self) -> &Json {
        &self.data
    }

    /// The body value at a JSON pointer (RFC 6901), e.g. `/inference_status/fps`.
    pub fn get(&self, pointer: &str) -> Option<&Json> {
        self.data.pointer(pointer)
    }

    /// Non-empty text at `pointer` (see [`lenient::as_text`]).
    pub fn get_str(&self, pointer: &str) -> Option<&str> {
        self.get(pointer).and_then(lenient::as_text)
    }

    /// A whole non-negative number at `pointer`, numbers as strings included
    /// (see [`lenient::as_u64`]).
    pub fn get_u64(&self, pointer: &str) -> Option<u64> {
        self.get(pointer).and_then(lenient::as_u64)
    }

    /// A finite number at `pointer`, numbers as strings included (see [`lenient::as_f64`]).
    pub fn get_f64(&self, pointer: &str) -> Option<f64> {
        self.get(pointer).and_then(lenient::as_f64)
    }

    /// Checks the rules decoding enforces, so that [`Event::encode`]'s bytes
    /// decode back to this event.
    pub fn validate(&self) -> Result<(), EventError> {
        check_family(self.family.as_str(), key::NAMES[key::FAMILY as usize])?;
        let texts = [
            (key::SUBTYPE, &self.subtype),
            (key::STREAM_ID, &self.stream_id),
            (key::REQUEST_ID, &self.request_id),
            (key::MANIFEST_ID, &self.manifest_id),
            (key::PIPELINE_ID, &self.pipeline_id),
            (key::MODEL_ID, &self.model_id),
            (key::GATEWAY_REGION, &self.gateway_region),
        ];
        for (k, text) in texts {
            if let Some(text) = text {
                check_text(text, key::NAMES[k as usize], MAX_FIELD_LEN)?;
            }
        }
        check_depth(&self.data)?;
        if let Some(envelope) = &self.kafka_envelope {
            for (name, value) in envelope {
                if name == "type" || name == "data" {
                    return Err(EventError::ReservedMember(name.clone()));
                }
                check_depth(value)?;
            }
        }
        Ok(())
    }

    /// The deterministic CBOR encoding (rule `event` of `telemetry.cddl`).
    pub fn encode(&self) -> Vec<u8> {
        cbor::to_vec(&self.to_cbor())
    }

    /// Strictly decodes one event encoded alone: deterministic CBOR, known
    /// keys, types and limits.
    pub fn decode(bytes: &[u8]) -> Result<Event, EventError> {
        Event::from_cbor(cbor::from_slice(bytes)?)
    }

    /// The event as a CBOR value (map entries in any order; [`cbor::to_vec`] sorts).
    pub(crate) fn to_cbor(&self) -> Cbor {
        let mut entries = vec![
            (uint(key::FAMILY), Cbor::Text(self.family.as_str().to_owned())),
            (uint(key::DATA), json_to_cbor(&self.data)),
        ];
        if let Some(ts) = self.ts {
            entries.push((uint(key::TS), uint(ts)));
        }
        let texts = [
            (key::SUBTYPE, &self.subtype),
            (key::STREAM_ID, &self.stream_id),
            (key::REQUEST_ID, &self.request_id),
            (key::MANIFEST_ID, &self.manifest_id),
            (key::PIPELINE_ID, &self.pipeline_id),
            (key::MODEL_ID, &self.model_id),
        ];
        for (k, text) in texts {
            if let Some(text) = text {
                entries.push((uint(k), Cbor::Text(text.clone())));
            }
        }
        if let Some(orchestrator) = self.orchestrator {
            entries.push((uint(key::ORCHESTRATOR), Cbor::Bytes(orchestrator.0.to_vec())));
        }
        if let Some(region) = &self.gateway_region {
            entries.push((uint(key::GATEWAY_REGION), Cbor::Text(region.clone())));
        }
        if let Some(origin) = self.origin {
            entries.push((uint(key::ORIGIN), uint(origin.code())));
        }
        if let Some(envelope) = &self.kafka_envelope {
            let members = envelope
                .iter()
                .map(|(name, value)| (Cbor::Text(name.clone()), json_to_cbor(value)))
                .collect();
            entries.push((uint(key::KAFKA), Cbor::Map(members)));
        }
        Cbor::Map(entries)
    }

    /// Strictly converts a decoded CBOR value into an event.
    pub(crate) fn from_cbor(value: Cbor) -> Result<Event, EventError> {
        let mut slots: [Option<Cbor>; 13] = Default::default();
        for (k, v) in cbor::int_keyed_map(value, &key::ALL)? {
            let slot = &mut slots[k as usize];
            if slot.is_some() {
                return Err(EventError::DuplicateKey(k));
            }
            *slot = Some(v);
        }
        let mut take = |k: u64| slots[k as usize].take();
        let name = |k: u64| key::NAMES[k as usize];

        let family = match take(key::FAMILY) {
            Some(Cbor::Text(t)) => family_from_name(&t, name(key::FAMILY))?,
            Some(_) => return Err(EventError::WrongType(name(key::FAMILY))),
            None => return Err(EventError::Missing(name(key::FAMILY))),
        };
        let data = cbor_to_json(take(key::DATA).ok_or(EventError::Missing(name(key::DATA)))?)?;
        let ts = match take(key::TS) {
            None => None,
            Some(Cbor::Integer(i)) => {
                Some(u64::try_from(i).map_err(|_| EventError::WrongType(name(key::TS)))?)
            }
            Some(_) => return Err(EventError::WrongType(name(key::TS))),
        };
        let mut text = |k: u64| -> Result<Option<String>, EventError> {
            match take(k) {
                None => Ok(None),
                Some(Cbor::Text(t)) => {
                    check_text(&t, name(k), MAX_FIELD_LEN)?;
                    Ok(Some(t))
                }
                Some(_) => Err(EventError::WrongType(name(k))),
            }
        };
        let subtype = text(key::SUBTYPE)?;
        let stream_id = text(key::STREAM_ID)?;
        let request_id = text(key::REQUEST_ID)?;
        let manifest_id = text(key::MANIFEST_ID)?;
        let pipeline_id = text(key::PIPELINE_ID)?;
        let model_id = text(key::MODEL_ID)?;
        let gateway_region = text(key::GATEWAY_REGION)?;
        let orchestrator = match take(key::ORCHESTRATOR) {
            None => None,
            Some(Cbor::Bytes(b)) => {
                Some(Address::from_slice(&b).ok_or(EventError::WrongLength {
                    field: name(key::ORCHESTRATOR),
                    expected: 20,
                    actual: b.len(),
                })?)
            }
            Some(_) => return Err(EventError::WrongType(name(key::ORCHESTRATOR))),
        };
        let origin = match take(key::ORIGIN) {
            None => None,
            Some(Cbor::Integer(i)) => {
                let code =
                    u64::try_from(i).map_err(|_| EventError::WrongType(name(key::ORIGIN)))?;
                Some(Origin::from_code(code).ok_or(EventError::UnknownOrigin(code))?)
            }
            Some(_) => return Err(EventError::WrongType(name(key::ORIGIN))),
        };
        let kafka_envelope = match take(key::KAFKA) {
            None => None,
            Some(Cbor::Map(members)) => {
                let mut envelope = Map::new();
                for (k, v) in members {
                    let Cbor::Text(member) = k else {
                        return Err(EventError::WrongType(name(key::KAFKA)));
                    };
                    if member == "type" || member == "data" {
                        return Err(EventError::ReservedMember(member));
                    }
                    let value = cbor_to_json(v)?;
                    if envelope.contains_key(&member) {
                        return Err(EventError::DuplicateJsonKey(member));
                    }
                    envelope.insert(member, value);
                }
                Some(envelope)
            }
            Some(_) => return Err(EventError::WrongType(name(key::KAFKA))),
        };
        Ok(Event {
            family,
            ts,
            subtype,
            stream_id,
            request_id,
            manifest_id,
            pipeline_id,
            model_id,
            orchestrator,
            gateway_region,
            origin,
            data,
            kafka_envelope,
        })
    }
}

/// Tolerant readers for go-livepeer's untidy JSON: numbers as strings, empty
/// strings for "unknown", nulls. They return `None` rather than fail.
pub mod lenient {
    use serde_json::Value as Json;

    /// Non-empty text; `None` for `""`, null and non-text values.
    pub fn as_text(v: &Json) -> Option<&str> {
        v.as_str().filter(|s| !s.is_empty())
    }

    /// A whole non-negative number: a JSON integer, a float with no
    /// fractional part (below 2^64), or a string of ASCII digits (`"79"`).
    pub fn as_u64(v: &Json) -> Option<u64> {
        match v {
            Json::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 18_446_744_073_709_551_616.0)
                    .map(|f| f as u64)
            }),
            Json::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().ok()
            }
            _ => None,
        }
    }

    /// A finite number: a JSON number or a string holding one in decimal
    /// (`"0.0009930487"`, `"79"`). Strings with units (`"1505.712 wei/pixel"`)
    /// are not numbers.
    pub fn as_f64(v: &Json) -> Option<f64> {
        match v {
            Json::Number(n) => n.as_f64(),
            Json::String(s) => {
                let numeric =
                    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
                s.parse::<f64>().ok().filter(|f| numeric && f.is_finite())
            }
            _ => None,
        }
    }

    /// A timestamp in ms: [`as_u64`], except that 0 (Go's zero value) is unknown.
    pub fn as_timestamp(v: &Json) -> Option<u64> {
        as_u64(v).filter(|t| *t > 0)
    }
}

/// A header field's text taken from `data`: non-empty and within [`MAX_FIELD_LEN`].
fn header_text(v: Option<&Json>) -> Option<String> {
    v.and_then(lenient::as_text).filter(|s| s.len() <= MAX_FIELD_LEN).map(str::to_owned)
}

fn family_from_name(name: &str, field: &'static str) -> Result<Family, EventError> {
    check_family(name, field)?;
    Ok(Family::from_name(name))
}

fn check_family(name: &str, field: &'static str) -> Result<(), EventError> {
    check_text(name, field, MAX_FAMILY_LEN)
}

fn check_text(text: &str, field: &'static str, max: usize) -> Result<(), EventError> {
    if text.is_empty() {
        Err(EventError::Empty(field))
    } else if text.len() > max {
        Err(EventError::Oversize { field, len: text.len(), max })
    } else {
        Ok(())
    }
}

/// Checks that `v` nests at most [`MAX_JSON_DEPTH`] deep, without recursing
/// further than that on hostile input.
fn check_depth(v: &Json) -> Result<(), EventError> {
    fn fits(v: &Json, left: usize) -> bool {
        match v {
            Json::Array(items) => left > 0 && items.iter().all(|i| fits(i, left - 1)),
            Json::Object(map) => left > 0 && map.values().all(|i| fits(i, left - 1)),
            _ => true,
        }
    }
    if fits(v, MAX_JSON_DEPTH) { Ok(()) } else { Err(EventError::TooDeep) }
}

fn uint(v: u64) -> Cbor {
    Cbor::Integer(v.into())
}

/// A JSON value as CBOR: integers as CBOR integers, floats as CBOR floats
/// (the shortest lossless head, written by [`cbor::to_vec`]).
pub(crate) fn json_to_cbor(v: &Json) -> Cbor {
    match v {
        Json::Null => Cbor::Null,
        Json::Bool(b) => Cbor::Bool(*b),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                uint(u)
            } else if let Some(i) = n.as_i64() {
                Cbor::Integer(i.into())
            } else {
                // serde_json numbers are u64, i64 or finite f64.
                Cbor::Float(n.as_f64().unwrap_or(0.0))
            }
        }
        Json::String(s) => Cbor::Text(s.clone()),
        Json::Array(items) => Cbor::Array(items.iter().map(json_to_cbor).collect()),
        Json::Object(map) => {
            Cbor::Map(map.iter().map(|(k, v)| (Cbor::Text(k.clone()), json_to_cbor(v))).collect())
        }
    }
}

/// Strictly converts a CBOR value in the JSON subset back to JSON.
pub(crate) fn cbor_to_json(v: Cbor) -> Result<Json, EventError> {
    fn convert(v: Cbor, left: usize) -> Result<Json, EventError> {
        Ok(match v {
            Cbor::Null => Json::Null,
            Cbor::Bool(b) => Json::Bool(b),
            Cbor::Integer(i) => {
                let i = i128::from(i);
                if let Ok(u) = u64::try_from(i) {
                    Json::Number(u.into())
                } else if let Ok(s) = i64::try_from(i) {
                    Json::Number(s.into())
                } else {
                    return Err(EventError::NotJson("integer outside the 64-bit range"));
                }
            }
            Cbor::Float(f) => {
                Json::Number(Number::from_f64(f).ok_or(EventError::NotJson("non-finite float"))?)
            }
            Cbor::Text(s) => Json::String(s),
            Cbor::Array(items) => {
                let left = left.checked_sub(1).ok_or(EventError::TooDeep)?;
                Json::Array(items.into_iter().map(|i| convert(i, left)).collect::<Result<_, _>>()?)
            }
            Cbor::Map(entries) => {
                let left = left.checked_sub(1).ok_or(EventError::TooDeep)?;
                let mut map = Map::new();
                for (k, v) in entries {
                    let Cbor::Text(k) = k else {
                        return Err(EventError::NotJson("map key that is not text"));
                    };
                    let v = convert(v, left)?;
                    if map.contains_key(&k) {
                        return Err(EventError::DuplicateJsonKey(k));
                    }
                    map.insert(k, v);
                }
                Json::Object(map)
            }
            Cbor::Bytes(_) => return Err(EventError::NotJson("byte string")),
            Cbor::Tag(..) => return Err(EventError::NotJson("tag")),
            _ => return Err(EventError::NotJson("simple value")),
        })
    }
    convert(v, MAX_JSON_DEPTH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_readers_take_untidy_values() {
        assert_eq!(lenient::as_u64(&json!("79")), Some(79));
        assert_eq!(lenient::as_u64(&json!(79)), Some(79));
        assert_eq!(lenient::as_u64(&json!(79.0)), Some(79));
        for bad in [json!(""), json!(null), json!("-1"), json!("+1"), json!(1.5), json!(-3)] {
            assert_eq!(lenient::as_u64(&bad), None, "{bad}");
        }
        assert_eq!(lenient::as_f64(&json!("0.0009930487")), Some(0.0009930487));
        assert_eq!(lenient::as_f64(&json!(15.5)), Some(15.5));
        for bad in [json!("1505.712 wei/pixel"), json!("NaN"), json!("inf"), json!(""), json!(null)]
        {
            assert_eq!(lenient::as_f64(&bad), None, "{bad}");
        }
        assert_eq!(lenient::as_text(&json!("")), None);
        assert_eq!(lenient::as_timestamp(&json!("0")), None);
    }

    #[test]
    fn family_equality_goes_by_name() {
        assert_eq!(Family::Other("stream_trace".into()), Family::StreamTrace);
        for f in Family::KNOWN {
            assert_eq!(Family::from_name(f.as_str()), f);
            assert!(!matches!(Family::from_name(f.as_str()), Family::Other(_)));
        }
    }

    #[test]
    fn ts_prefers_data_then_envelope_then_fallback() {
        let from_data = Event::from_type_and_data("x", json!({"timestamp": "5"}), 9);
        assert_eq!(from_data.map(|e| e.ts), Ok(Some(5)));
        let fallback = Event::from_type_and_data("x", json!({"timestamp": ""}), 9);
        assert_eq!(fallback.map(|e| e.ts), Ok(Some(9)));
        let env = json!({"type": "x", "timestamp": "7", "data": [1]});
        assert_eq!(Event::from_kafka_json(&env).map(|e| e.ts), Ok(Some(7)));
        let none = json!({"type": "x", "timestamp": "", "data": null});
        assert_eq!(Event::from_kafka_json(&none).map(|e| e.ts), Ok(None));
    }

    #[test]
    fn header_ignores_unusable_values() {
        let data = json!({
            "stream_id": 12, "request_id": "", "pipeline": null,
            "orchestrator_info": {"address": "0x1234"}, "origin": "staging",
            "type": "x".repeat(MAX_FIELD_LEN + 1),
        });
        let e = Event::from_type_and_data("stream_trace", data.clone(), 1);
        let e = e.expect("untidy data is not an error");
        assert_eq!((e.stream_id, e.request_id, e.model_id), (None, None, None));
        assert_eq!((e.orchestrator, e.origin, e.subtype), (None, None, None));
        assert_eq!(e.data, data);
    }

    #[test]
    fn validate_matches_decoding() {
        let mut e = Event::from_type_and_data("probe", json!({}), 1).expect("valid");
        e.validate().expect("valid");
        e.stream_id = Some(String::new());
        assert_eq!(e.validate(), Err(EventError::Empty("stream_id")));
        assert_eq!(Event::decode(&e.encode()), Err(EventError::Empty("stream_id")));
        e.stream_id = None;
        e.kafka_envelope = Some(Map::from_iter([("data".to_owned(), Json::Null)]));
        let reserved = EventError::ReservedMember("data".into());
        assert_eq!(e.validate(), Err(reserved.clone()));
        assert_eq!(Event::decode(&e.encode()), Err(reserved));
    }
}
