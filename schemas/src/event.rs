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

use serde_json::{Map, Number, Value as Json};

use crate::Address;
use crate::body::{Body, Members};
use crate::cbor::{self, CborError, Duplicates, Item, MapError, Reader, major};
use crate::event_view::EventLayout;
pub use crate::event_view::EventRef;

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
pub(crate) mod key {
    pub(crate) const FAMILY: u64 = 0;
    pub(crate) const DATA: u64 = 1;
    pub(crate) const TS: u64 = 2;
    pub(crate) const SUBTYPE: u64 = 3;
    pub(crate) const STREAM_ID: u64 = 4;
    pub(crate) const REQUEST_ID: u64 = 5;
    pub(crate) const MANIFEST_ID: u64 = 6;
    pub(crate) const PIPELINE_ID: u64 = 7;
    pub(crate) const MODEL_ID: u64 = 8;
    pub(crate) const ORCHESTRATOR: u64 = 9;
    pub(crate) const GATEWAY_REGION: u64 = 10;
    pub(crate) const ORIGIN: u64 = 11;
    pub(crate) const KAFKA: u64 = 12;
    pub(crate) const ALL: [u64; 13] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    /// Field names, indexed by key, for error messages.
    pub(crate) const NAMES: [&str; 13] = [
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
    /// The family's body: go-livepeer's `data`, unchanged (may be any JSON
    /// value). A decoded body keeps its bytes and builds its tree on first use.
    pub data: Body,
    /// The Kafka envelope's members other than `type` and `data` (normally
    /// `id`, `timestamp`, `gateway`), verbatim; `None` when the event did not
    /// come from Kafka JSON. Decoded members keep their bytes, as `data` does.
    pub kafka_envelope: Option<Members>,
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
        event.kafka_envelope = Some(envelope.into());
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
            data: data.into(),
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
                out.insert("data".to_owned(), self.data.tree().clone());
                for (name, value) in envelope.iter() {
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
                out.insert("data".to_owned(), self.data.tree().clone());
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
        self.data.tree()
    }

    /// The body value at a JSON pointer (RFC 6901), e.g. `/inference_status/fps`.
    pub fn get(&self, pointer: &str) -> Option<&Json> {
        self.data.pointer(pointer)
    }

    /// Non-empty text at `pointer` (see [`lenient::as_text`]); read from a
    /// decoded body's bytes, without building its tree.
    pub fn get_str(&self, pointer: &str) -> Option<&str> {
        self.data.get_str(pointer)
    }

    /// A whole non-negative number at `pointer`, numbers as strings included
    /// (see [`lenient::as_u64`]); read like [`Event::get_str`].
    pub fn get_u64(&self, pointer: &str) -> Option<u64> {
        self.data.get_u64(pointer)
    }

    /// A finite number at `pointer`, numbers as strings included (see
    /// [`lenient::as_f64`]); read like [`Event::get_str`].
    pub fn get_f64(&self, pointer: &str) -> Option<f64> {
        self.data.get_f64(pointer)
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
        // A decoded body was checked when it was decoded.
        if self.data.encoded().is_none() {
            check_depth(&self.data)?;
        }
        // Decoded members were checked when they were decoded.
        if let Some(envelope) = self.kafka_envelope.as_ref().filter(|e| e.encoded().is_none()) {
            for (name, value) in envelope.iter() {
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
        let mut out = Vec::with_capacity(512);
        self.encode_into(&mut out);
        out
    }

    /// Appends [`Event::encode`]'s bytes to `out`: a publisher encodes every
    /// event into one reused buffer instead of a new vector each.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.write_cbor(out, &mut Vec::new());
    }

    /// Strictly decodes one event encoded alone: deterministic CBOR, known
    /// keys, types and limits.
    pub fn decode(bytes: &[u8]) -> Result<Event, EventError> {
        let mut fast = Reader::new(bytes);
        let mut texts = String::new();
        if let Some(layout) = EventLayout::read_valid(&mut fast, &mut texts)
            && fast.at_end()
        {
            return Ok(layout.to_event(bytes, &texts));
        }
        cbor::check(bytes, Duplicates::Allow)?;
        let mut reader = Reader::new(bytes);
        let event = Event::read_cbor(&mut reader)?;
        reader.finish()?;
        Ok(event)
    }

    /// Appends the event's deterministic encoding to `out`, written straight
    /// from the fields: the integer keys go in increasing order, which is
    /// their deterministic order. `scratch` is reused to sort object members.
    pub(crate) fn write_cbor<'a>(&'a self, out: &mut Vec<u8>, scratch: &mut Scratch<'a>) {
        // Keys 3..=8, in order.
        let texts = [
            &self.subtype,
            &self.stream_id,
            &self.request_id,
            &self.manifest_id,
            &self.pipeline_id,
            &self.model_id,
        ];
        let present = [
            self.ts.is_some(),
            self.orchestrator.is_some(),
            self.gateway_region.is_some(),
            self.origin.is_some(),
            self.kafka_envelope.is_some(),
        ];
        let len = 2
            + texts.iter().filter(|t| t.is_some()).count()
            + present.iter().filter(|p| **p).count();
        cbor::write_head(out, major::MAP, len as u64);
        cbor::write_uint(out, key::FAMILY);
        cbor::write_text(out, self.family.as_str());
        cbor::write_uint(out, key::DATA);
        match self.data.encoded() {
            // Checked to be deterministic when decoded: the same bytes.
            Some(bytes) => out.extend_from_slice(bytes),
            None => write_json(self.data.tree(), out, scratch),
        }
        if let Some(ts) = self.ts {
            cbor::write_uint(out, key::TS);
            cbor::write_uint(out, ts);
        }
        for (k, text) in (key::SUBTYPE..).zip(texts) {
            if let Some(text) = text {
                cbor::write_uint(out, k);
                cbor::write_text(out, text);
            }
        }
        if let Some(orchestrator) = &self.orchestrator {
            cbor::write_uint(out, key::ORCHESTRATOR);
            cbor::write_bytes(out, &orchestrator.0);
        }
        if let Some(region) = &self.gateway_region {
            cbor::write_uint(out, key::GATEWAY_REGION);
            cbor::write_text(out, region);
        }
        if let Some(origin) = self.origin {
            cbor::write_uint(out, key::ORIGIN);
            cbor::write_uint(out, origin.code());
        }
        if let Some(envelope) = &self.kafka_envelope {
            cbor::write_uint(out, key::KAFKA);
            match envelope.encoded() {
                Some(bytes) => out.extend_from_slice(bytes),
                None => write_object(envelope.tree(), out, scratch),
            }
        }
    }

    /// Strictly reads one event from checked CBOR ([`cbor::check`]), reporting
    /// the first problem in the order the format defines: keys (not a map, a
    /// key that is not an unsigned integer, an unknown key, then a repeated
    /// key), then each field in turn.
    pub(crate) fn read_cbor(r: &mut Reader<'_>) -> Result<Event, EventError> {
        let Item::Map(len) = r.next()? else {
            return Err(EventError::Structure(MapError::NotAMap));
        };
        let mut seen = [false; key::ALL.len()];
        let mut duplicate = None;
        let mut family: Slot<Family> = None;
        let mut data: Slot<Body> = None;
        let mut ts: Slot<u64> = None;
        let mut texts: [Slot<String>; key::ALL.len()] = Default::default();
        let mut orchestrator: Slot<Address> = None;
        let mut origin: Slot<Origin> = None;
        let mut kafka: Slot<Map<String, Json>> = None;
        for _ in 0..len {
            let Some(k) = r.map_key::<EventError>(&mut seen, &mut duplicate)? else { continue };
            match k {
                key::FAMILY => family = r.slot(read_family)?,
                key::DATA => data = r.slot(|r| read_json(r, MAX_JSON_DEPTH).map(Body::from))?,
                key::TS => ts = r.slot(read_ts)?,
                key::ORCHESTRATOR => orchestrator = r.slot(read_orchestrator)?,
                key::ORIGIN => origin = r.slot(read_origin)?,
                key::KAFKA => kafka = r.slot(read_kafka)?,
                _ => {
                    let slot = r.slot(|r| read_text(r, k))?;
                    if let Some(s) = texts.get_mut(k as usize) {
                        *s = slot;
                    }
                }
            }
        }
        if let Some(k) = duplicate {
            return Err(EventError::DuplicateKey(k));
        }
        let family = family.ok_or(EventError::Missing(key::NAMES[key::FAMILY as usize]))??;
        let data = data.ok_or(EventError::Missing(key::NAMES[key::DATA as usize]))??;
        let ts = ts.transpose()?;
        let mut text = |k: u64| texts.get_mut(k as usize).and_then(Option::take).transpose();
        let subtype = text(key::SUBTYPE)?;
        let stream_id = text(key::STREAM_ID)?;
        let request_id = text(key::REQUEST_ID)?;
        let manifest_id = text(key::MANIFEST_ID)?;
        let pipeline_id = text(key::PIPELINE_ID)?;
        let model_id = text(key::MODEL_ID)?;
        let gateway_region = text(key::GATEWAY_REGION)?;
        Ok(Event {
            family,
            ts,
            subtype,
            stream_id,
            request_id,
            manifest_id,
            pipeline_id,
            model_id,
            orchestrator: orchestrator.transpose()?,
            gateway_region,
            origin: origin.transpose()?,
            data,
            kafka_envelope: kafka.transpose()?.map(Members::from),
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

pub(crate) fn family_from_name(name: &str, field: &'static str) -> Result<Family, EventError> {
    check_family(name, field)?;
    Ok(Family::from_name(name))
}

fn check_family(name: &str, field: &'static str) -> Result<(), EventError> {
    check_text(name, field, MAX_FAMILY_LEN)
}

pub(crate) fn check_text(text: &str, field: &'static str, max: usize) -> Result<(), EventError> {
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

/// Object members being sorted while an event is encoded (a stack shared by
/// nested objects, so that encoding allocates once).
pub(crate) type Scratch<'a> = Vec<(&'a str, &'a Json)>;

/// A field as read, kept until every key has been seen: absent, or its value
/// or its error.
type Slot<T> = Option<Result<T, EventError>>;

/// Appends a JSON value as deterministic CBOR: integers as CBOR integers,
/// other numbers as the shortest float that holds them exactly, objects as
/// maps with text keys in deterministic order.
pub(crate) fn write_json<'a>(v: &'a Json, out: &mut Vec<u8>, scratch: &mut Scratch<'a>) {
    match v {
        Json::Null => out.push(0xf6),
        Json::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                cbor::write_uint(out, u);
            } else if let Some(i) = n.as_i64() {
                cbor::write_int(out, i);
            } else {
                // serde_json numbers are u64, i64 or finite f64.
                cbor::write_float(out, n.as_f64().unwrap_or(0.0));
            }
        }
        Json::String(s) => cbor::write_text(out, s),
        Json::Array(items) => {
            cbor::write_head(out, major::ARRAY, items.len() as u64);
            for item in items {
                write_json(item, out, scratch);
            }
        }
        Json::Object(map) => write_object(map, out, scratch),
    }
}

/// Appends an object as a CBOR map, members in deterministic order: shorter
/// names first, then bytewise (the order of their encodings).
fn write_object<'a>(map: &'a Map<String, Json>, out: &mut Vec<u8>, scratch: &mut Scratch<'a>) {
    cbor::write_head(out, major::MAP, map.len() as u64);
    let mut names = map.keys();
    let sorted = match names.next() {
        None => true,
        Some(first) => names
            .try_fold(first, |prev, name| (cmp_names(prev, name).is_lt()).then_some(name))
            .is_some(),
    };
    if sorted {
        for (name, value) in map {
            cbor::write_text(out, name);
            write_json(value, out, scratch);
        }
        return;
    }
    let base = scratch.len();
    scratch.extend(map.iter().map(|(name, value)| (name.as_str(), value)));
    let end = scratch.len();
    if let Some(members) = scratch.get_mut(base..) {
        // Names are unique, so an unstable sort is deterministic.
        members.sort_unstable_by(|a, b| cmp_names(a.0, b.0));
    }
    for i in base..end {
        // Nested objects push above `end` and pop back before returning.
        if let Some(&(name, value)) = scratch.get(i) {
            cbor::write_text(out, name);
            write_json(value, out, scratch);
        }
    }
    scratch.truncate(base);
}

/// The order of two text keys' encodings.
fn cmp_names(a: &str, b: &str) -> std::cmp::Ordering {
    cmp_name_bytes(a.as_bytes(), b.as_bytes())
}

/// [`cmp_names`] on the keys' UTF-8 bytes.
fn cmp_name_bytes(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Fast path: non-empty text of at most `max` bytes.
#[inline]
pub(crate) fn valid_text<'a>(r: &mut Reader<'a>, max: usize) -> Option<&'a str> {
    let Item::Text(t) = r.next().ok()? else {
        return None;
    };
    if t.is_empty() || t.len() > max {
        return None;
    }
    std::str::from_utf8(t).ok()
}

/// Fast path: a map key that is text and sorts strictly after the previous
/// key `prev` (so no key repeats).
#[inline]
pub(crate) fn valid_name<'a>(r: &mut Reader<'a>, prev: &mut Option<&'a [u8]>) -> Option<&'a [u8]> {
    let Item::Text(name) = r.next().ok()? else {
        return None;
    };
    // go-livepeer's names are ASCII: as for texts, the word-at-a-time check
    // is cheaper than full UTF-8 validation.
    if !name.is_ascii() {
        std::str::from_utf8(name).ok()?;
    }
    if prev.is_some_and(|prev| !cmp_name_bytes(prev, name).is_lt()) {
        return None;
    }
    *prev = Some(name);
    Some(name)
}

/// Fast path: checks, without building anything, that the next value is in
/// the JSON subset, nests at most `left` deep and has map keys in strictly
/// increasing order; [`read_json`] then reads it without fail.
pub(crate) fn valid_json(r: &mut Reader<'_>, left: usize) -> Option<()> {
    match r.next().ok()? {
        Item::Null | Item::Bool(_) | Item::Uint(_) => {}
        Item::Nint(n) => {
            i64::try_from(n).ok()?;
        }
        Item::Float(f) => {
            f.is_finite().then_some(())?;
        }
        // go-livepeer's texts are ASCII; the word-at-a-time check is
        // cheaper than full UTF-8 validation on short strings.
        Item::Text(t) => {
            (t.is_ascii() || std::str::from_utf8(t).is_ok()).then_some(())?;
        }
        Item::Array(len) => {
            let left = left.checked_sub(1)?;
            for _ in 0..len {
                valid_json(r, left)?;
            }
        }
        Item::Map(len) => {
            let left = left.checked_sub(1)?;
            let mut prev = None;
            for _ in 0..len {
                valid_name(r, &mut prev)?;
                valid_json(r, left)?;
            }
        }
        Item::Bytes(_) | Item::Tag(_) => return None,
    }
    Some(())
}

fn read_family(r: &mut Reader<'_>) -> Result<Family, EventError> {
    let field = key::NAMES[key::FAMILY as usize];
    let Item::Text(t) = r.next()? else {
        return Err(EventError::WrongType(field));
    };
    family_from_name(cbor::text(t)?, field)
}

fn read_ts(r: &mut Reader<'_>) -> Result<u64, EventError> {
    match r.next()? {
        Item::Uint(ts) => Ok(ts),
        _ => Err(EventError::WrongType(key::NAMES[key::TS as usize])),
    }
}

fn read_text(r: &mut Reader<'_>, k: u64) -> Result<String, EventError> {
    let field = key::NAMES.get(k as usize).copied().unwrap_or("?");
    let Item::Text(t) = r.next()? else {
        return Err(EventError::WrongType(field));
    };
    let t = cbor::text(t)?;
    check_text(t, field, MAX_FIELD_LEN)?;
    Ok(t.to_owned())
}

fn read_orchestrator(r: &mut Reader<'_>) -> Result<Address, EventError> {
    let field = key::NAMES[key::ORCHESTRATOR as usize];
    let Item::Bytes(b) = r.next()? else {
        return Err(EventError::WrongType(field));
    };
    Address::from_slice(b).ok_or(EventError::WrongLength { field, expected: 20, actual: b.len() })
}

fn read_origin(r: &mut Reader<'_>) -> Result<Origin, EventError> {
    let Item::Uint(code) = r.next()? else {
        return Err(EventError::WrongType(key::NAMES[key::ORIGIN as usize]));
    };
    Origin::from_code(code).ok_or(EventError::UnknownOrigin(code))
}

fn read_kafka(r: &mut Reader<'_>) -> Result<Map<String, Json>, EventError> {
    let field = key::NAMES[key::KAFKA as usize];
    let Item::Map(len) = r.next()? else {
        return Err(EventError::WrongType(field));
    };
    let mut envelope = Map::with_capacity(r.capacity(len));
    for _ in 0..len {
        let Item::Text(member) = r.next()? else {
            return Err(EventError::WrongType(field));
        };
        let member = cbor::text(member)?;
        if member == "type" || member == "data" {
            return Err(EventError::ReservedMember(member.to_owned()));
        }
        let value = read_json(r, MAX_JSON_DEPTH)?;
        insert_member(&mut envelope, member, value)?;
    }
    Ok(envelope)
}

/// Inserts a member, refusing a name already there.
fn insert_member(map: &mut Map<String, Json>, name: &str, value: Json) -> Result<(), EventError> {
    match map.entry(name) {
        serde_json::map::Entry::Vacant(slot) => {
            slot.insert(value);
            Ok(())
        }
        serde_json::map::Entry::Occupied(_) => Err(EventError::DuplicateJsonKey(name.to_owned())),
    }
}

/// Strictly reads a CBOR value in the JSON subset (null, bool, 64-bit
/// integer, finite float, text, array, map with text keys) as JSON, nesting
/// at most `left` deep.
pub(crate) fn read_json(r: &mut Reader<'_>, left: usize) -> Result<Json, EventError> {
    Ok(match r.next()? {
        Item::Null => Json::Null,
        Item::Bool(b) => Json::Bool(b),
        Item::Uint(u) => Json::Number(u.into()),
        Item::Nint(n) => match i64::try_from(n) {
            Ok(n) => Json::Number((-1 - n).into()),
            Err(_) => return Err(EventError::NotJson("integer outside the 64-bit range")),
        },
        Item::Float(f) => {
            Json::Number(Number::from_f64(f).ok_or(EventError::NotJson("non-finite float"))?)
        }
        Item::Text(t) => Json::String(cbor::text(t)?.to_owned()),
        Item::Array(len) => {
            let left = left.checked_sub(1).ok_or(EventError::TooDeep)?;
            let mut items = Vec::with_capacity(r.capacity(len));
            for _ in 0..len {
                items.push(read_json(r, left)?);
            }
            Json::Array(items)
        }
        Item::Map(len) => {
            let left = left.checked_sub(1).ok_or(EventError::TooDeep)?;
            let mut map = Map::with_capacity(r.capacity(len));
            for _ in 0..len {
                let Item::Text(name) = r.next()? else {
                    return Err(EventError::NotJson("map key that is not text"));
                };
                let name = cbor::text(name)?;
                let value = read_json(r, left)?;
                insert_member(&mut map, name, value)?;
            }
            Json::Object(map)
        }
        Item::Bytes(_) => return Err(EventError::NotJson("byte string")),
        Item::Tag(_) => return Err(EventError::NotJson("tag")),
    })
}

/// Test inputs shared by the event and batch codec tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::cbor::testing as cbor_testing;
    use proptest::prelude::*;
    use serde_json::json;

    /// JSON of every shape in the subset events carry: integers of both
    /// signs, floats of every width, text, nested arrays and objects.
    pub(crate) fn arb_json() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<u64>().prop_map(|n| json!(n)),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_filter_map("finite", |b| {
                Number::from_f64(f64::from_bits(b)).map(Json::Number)
            }),
            prop::sample::select(vec![0.0, -0.0, 0.5, 1e300, 65504.0, 100000.0])
                .prop_filter_map("finite", |f| Number::from_f64(f).map(Json::Number)),
            "\\PC{0,10}".prop_map(Json::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
                prop::collection::vec((cbor_testing::arb_text(), inner), 0..6)
                    .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    /// An optional header text: short, at the length limit or over it.
    fn arb_opt_text() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop_oneof![
            cbor_testing::arb_text(),
            Just("y".repeat(MAX_FIELD_LEN)),
            Just("y".repeat(MAX_FIELD_LEN + 1)),
        ])
    }

    /// Events as built by hand: any field values, valid or not.
    pub(crate) fn arb_event() -> impl Strategy<Value = Event> {
        (
            (
                prop_oneof![cbor_testing::arb_text(), "[a-z_]{1,70}"],
                arb_json(),
                any::<Option<u64>>(),
            ),
            [arb_opt_text(), arb_opt_text(), arb_opt_text(), arb_opt_text()],
            [arb_opt_text(), arb_opt_text(), arb_opt_text()],
            (any::<Option<[u8; 20]>>(), any::<Option<bool>>()),
            prop::option::of(prop::collection::vec((cbor_testing::arb_text(), arb_json()), 0..4)),
        )
            .prop_map(
                |((family, data, ts), [a, b, c, d], [e, f, g], (orch, origin), kafka)| Event {
                    family: Family::from_name(&family),
                    ts,
                    subtype: a,
                    stream_id: b,
                    request_id: c,
                    manifest_id: d,
                    pipeline_id: e,
                    model_id: f,
                    orchestrator: orch.map(Address),
                    gateway_region: g,
                    origin: origin.map(|s| if s { Origin::Synthetic } else { Origin::Production }),
                    data: data.into(),
                    kafka_envelope: kafka.map(|m| Map::from_iter(m).into()),
                },
            )
    }
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
        e.kafka_envelope = Some(Map::from_iter([("data".to_owned(), Json::Null)]).into());
        let reserved = EventError::ReservedMember("data".into());
        assert_eq!(e.validate(), Err(reserved.clone()));
        assert_eq!(Event::decode(&e.encode()), Err(reserved));
    }

    /// The direct codecs against the ones they replaced ([`crate::oracle`]):
    /// same bytes out, same result or error (bar the
    /// wording of malformed CBOR) on any input.
    mod agreement {
        use super::*;
        use crate::batch::{self, BatchError};
        use crate::cbor::testing::{self, Choices};
        use crate::event::testing::arb_event;
        use crate::{TelemetryBatch, oracle};
        use ciborium::Value as Cbor;
        use proptest::prelude::*;

        /// A field value of the right type or not; bodies in and out of
        /// the JSON subset (repeated member names, non-finite floats, …).
        fn arb_field() -> impl Strategy<Value = Cbor> {
            let body = testing::arb_leaf().prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Cbor::Array),
                    prop::collection::vec(
                        (testing::arb_text().prop_map(Cbor::Text), inner.clone()),
                        0..4
                    )
                    .prop_map(Cbor::Map),
                    prop::collection::vec((testing::arb_leaf(), inner), 0..2).prop_map(Cbor::Map),
                ]
            });
            prop_oneof![
                2 => prop::sample::select(vec!["", "x", "stream_trace", "type", "data"])
                    .prop_map(|t| Cbor::Text(t.into())),
                1 => Just(Cbor::Text("y".repeat(MAX_FIELD_LEN + 1))),
                1 => (0u64..3).prop_map(|n| Cbor::Integer(n.into())),
                1 => prop::collection::vec(any::<u8>(), 19..22).prop_map(Cbor::Bytes),
                1 => Just((0..MAX_JSON_DEPTH + 1).fold(Cbor::Null, |v, _| Cbor::Array(vec![v]))),
                4 => body,
            ]
        }

        /// Values shaped like an event map, right and wrong: keys known,
        /// unknown, negative or text, repeated or out of order; valid events
        /// with one field replaced, repeated or removed; anything at all.
        fn arb_event_value() -> impl Strategy<Value = Cbor> {
            let key = prop_oneof![
                6 => (0u64..13).prop_map(|k| Cbor::Integer(k.into())),
                1 => prop::sample::select(vec![13i64, 24, -1]).prop_map(|k| Cbor::Integer(k.into())),
                1 => Just(Cbor::Text("k".into())),
            ];
            let perturbed = (arb_event(), any::<prop::sample::Index>(), arb_field(), 0u8..4)
                .prop_map(|(event, at, value, op)| {
                    let Cbor::Map(mut entries) = oracle::event::to_cbor(&event) else {
                        unreachable!("an event is a map")
                    };
                    let i = at.index(entries.len());
                    match op {
                        0 => entries[i].1 = value,
                        1 => entries.insert(i, entries[i].clone()),
                        2 => drop(entries.remove(i)),
                        _ => entries.push((entries[i].0.clone(), value)),
                    }
                    Cbor::Map(entries)
                });
            prop_oneof![
                3 => prop::collection::vec((key, arb_field()), 0..8).prop_map(Cbor::Map),
                3 => perturbed,
                1 => arb_event().prop_map(|e| oracle::event::to_cbor(&e)),
                1 => testing::arb_value(),
            ]
        }

        fn batch_value(events: Vec<Cbor>, certificate: Cbor) -> Cbor {
            let int = |k: u64| Cbor::Integer(k.into());
            Cbor::Map(vec![
                (int(0), Cbor::Text(batch::SCHEMA.into())),
                (int(1), certificate),
                (int(2), Cbor::Array(events)),
            ])
        }

        fn malformed<T>(r: &Result<T, EventError>) -> bool {
            matches!(r, Err(EventError::Cbor(CborError::Malformed(_))))
        }

        fn batch_malformed<T>(r: &Result<T, BatchError>) -> bool {
            matches!(r, Err(BatchError::Cbor(CborError::Malformed(_))))
        }

        /// Event and batch decoding agree with the reference on `bytes`.
        fn assert_same_outcome(bytes: &[u8]) {
            let (ours, theirs) = (Event::decode(bytes), oracle::event::decode(bytes));
            if !(malformed(&ours) && malformed(&theirs)) {
                assert_eq!(ours, theirs, "event {bytes:02x?}");
            }
            if let Ok(event) = &ours {
                assert_eq!(event.encode(), bytes);
            }
            let (ours, theirs) = (TelemetryBatch::decode(bytes), oracle::batch::decode(bytes));
            if !(batch_malformed(&ours) && batch_malformed(&theirs)) {
                assert_eq!(ours, theirs, "batch {bytes:02x?}");
            }
            if let Ok(batch) = &ours {
                assert_eq!(batch.encode(), bytes);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            #[test]
            fn encoders_match_the_reference(
                events in prop::collection::vec(arb_event(), 0..4),
                certificate in prop::collection::vec(any::<u8>(), 0..40),
            ) {
                for event in &events {
                    let bytes = event.encode();
                    prop_assert_eq!(&bytes, &oracle::event::encode(event));
                    assert_same_outcome(&bytes);
                }
                let batch = TelemetryBatch::new(certificate, events);
                let bytes = batch.encode();
                prop_assert_eq!(&bytes, &oracle::batch::encode(&batch));
                assert_same_outcome(&bytes);
            }

            #[test]
            fn decoders_match_the_reference(
                values in prop::collection::vec(arb_event_value(), 1..4),
                certificate in prop_oneof![
                    4 => prop::collection::vec(any::<u8>(), 0..8).prop_map(Cbor::Bytes),
                    1 => testing::arb_leaf(),
                ],
                choices in prop::collection::vec(any::<u8>(), 0..48),
                edits in prop::collection::vec(
                    (any::<prop::sample::Index>(), any::<u8>(), any::<u8>()),
                    0..3,
                ),
            ) {
                let batch = batch_value(values.clone(), certificate);
                let mut choices = Choices::new(choices);
                for value in values.iter().chain([&batch]) {
                    // Deterministic bytes (repeated keys included), loose
                    // encodings, and both damaged.
                    let canonical = cbor::to_vec(value);
                    let loose = testing::loose(value, &mut choices);
                    assert_same_outcome(&canonical);
                    assert_same_outcome(&loose);
                    assert_same_outcome(&testing::mutate(canonical, &edits));
                    assert_same_outcome(&testing::mutate(loose, &edits));
                }
            }
        }
    }
}
