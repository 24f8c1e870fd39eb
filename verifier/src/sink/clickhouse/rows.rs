//! The ClickHouse tables and their rows (ClickHouse 18.16 and later: no
//! `TTL`, `DateTime64` or `LowCardinality`; `DateTime` is sent as Unix
//! seconds, which `JSONEachRow` reads).

use serde::{Deserialize, Serialize};
use vouch_schema::Event;

use crate::sink::follow::AcceptedEnvelope;

/// The accepted-events table.
pub const EVENTS_TABLE: &str = "vouch_events";

/// The aggregate-buckets table.
pub const SLA_MINUTES_TABLE: &str = "vouch_sla_minutes";

/// `CREATE TABLE` of [`EVENTS_TABLE`].
///
/// No `PARTITION BY`: with one partition, each insert of up to
/// `max_insert_block_size` rows (about a million) becomes one part, which
/// ClickHouse commits atomically; the sink's exactly-once resume relies on
/// that (see the `clickhouse` module docs).
pub const EVENTS_DDL: &str = "CREATE TABLE IF NOT EXISTS vouch_events (
    log_index UInt64,
    event_index UInt32,
    envelope_hash String,
    principal String,
    delegate String,
    role String,
    region String,
    msg_stream_id String,
    msg_partition UInt16,
    msg_timestamp UInt64,
    msg_seq UInt32,
    msg_chain_id String,
    family String,
    subtype String,
    ts DateTime,
    ts_ms UInt64,
    stream_id String,
    request_id String,
    manifest_id String,
    pipeline_id String,
    model_id String,
    orchestrator String,
    gateway_region String,
    origin String,
    kafka_json String
) ENGINE = MergeTree() ORDER BY (ts, log_index, event_index)";

/// `CREATE TABLE` of [`SLA_MINUTES_TABLE`]: one row per UTC minute and
/// (orchestrator, model, gateway region, origin). A bucket written again
/// replaces the earlier row with a lower `version` once parts merge; read
/// it with `FINAL` (or `argMax(…, version)`).
pub const SLA_MINUTES_DDL: &str = "CREATE TABLE IF NOT EXISTS vouch_sla_minutes (
    orchestrator String,
    model_id String,
    region String,
    origin String,
    minute_start DateTime,
    attempts UInt64,
    startup_successes UInt64,
    swaps UInt64,
    failures UInt64,
    excused UInt64,
    inference_minutes Float64,
    ptff_p50_ms Nullable(Float64),
    ptff_p95_ms Nullable(Float64),
    ptff_p99_ms Nullable(Float64),
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (orchestrator, model_id, region, origin, minute_start)";

/// One row of [`EVENTS_TABLE`]: an accepted event, its normalized header,
/// its provenance, and go-livepeer's Kafka JSON whole (`kafka_json`, for
/// `visitParamExtract*` on fields the header does not carry). Absent
/// header fields are empty strings (and `ts` 0), as ClickHouse has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    /// The envelope's record index in the verifier's log.
    pub log_index: u64,
    /// The event's position in its batch, from 0.
    pub event_index: u32,
    /// blake3 of the envelope bytes, hex.
    pub envelope_hash: String,
    /// The principal (certificate), `0x` hex.
    pub principal: String,
    /// The signing delegate (envelope publisher), `0x` hex.
    pub delegate: String,
    /// The certificate's role.
    pub role: String,
    /// The certificate's declared region.
    pub region: String,
    /// The envelope's Streamr stream id.
    pub msg_stream_id: String,
    /// The envelope's partition.
    pub msg_partition: u32,
    /// The envelope's timestamp, ms.
    pub msg_timestamp: u64,
    /// The envelope's sequence number.
    pub msg_seq: u32,
    /// The envelope's message chain id.
    pub msg_chain_id: String,
    /// The event family (Kafka `type`).
    pub family: String,
    /// The subtype (`data.type`).
    pub subtype: String,
    /// Event time, Unix seconds (0 when unknown).
    pub ts: u64,
    /// Event time, ms (0 when unknown).
    pub ts_ms: u64,
    /// go-livepeer's `stream_id`.
    pub stream_id: String,
    /// Gateway session id.
    pub request_id: String,
    /// Orchestrator session id.
    pub manifest_id: String,
    /// go-livepeer's `pipeline_id`.
    pub pipeline_id: String,
    /// The model id.
    pub model_id: String,
    /// The orchestrator's address, `0x` hex.
    pub orchestrator: String,
    /// The gateway's region.
    pub gateway_region: String,
    /// `production` or `synthetic`.
    pub origin: String,
    /// go-livepeer's Kafka JSON of the event.
    pub kafka_json: String,
}

impl EventRow {
    /// The row of event `event_index` of `envelope`.
    pub fn new(envelope: &AcceptedEnvelope, event_index: usize, event: &Event) -> EventRow {
        let id = &envelope.envelope.id;
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let ts_ms = event.ts.unwrap_or(0);
        EventRow {
            log_index: envelope.position.index,
            event_index: event_index as u32,
            envelope_hash: hex::encode(envelope.envelope_hash),
            principal: envelope.principal.to_hex(),
            delegate: envelope.delegate.to_hex(),
            role: envelope.role.as_str().to_owned(),
            region: envelope.region.clone(),
            msg_stream_id: id.stream_id.clone(),
            msg_partition: id.partition,
            msg_timestamp: id.timestamp,
            msg_seq: id.seq,
            msg_chain_id: id.msg_chain_id.clone(),
            family: event.family.as_str().to_owned(),
            subtype: text(&event.subtype),
            // DateTime is a u32 of seconds: clamp what it cannot hold.
            ts: (ts_ms / 1000).min(u64::from(u32::MAX)),
            ts_ms,
            stream_id: text(&event.stream_id),
            request_id: text(&event.request_id),
            manifest_id: text(&event.manifest_id),
            pipeline_id: text(&event.pipeline_id),
            model_id: text(&event.model_id),
            orchestrator: event.orchestrator.map(|a| a.to_hex()).unwrap_or_default(),
            gateway_region: text(&event.gateway_region),
            origin: event.origin.map(|o| o.as_str().to_owned()).unwrap_or_default(),
            kafka_json: event.to_kafka_json().to_string(),
        }
    }
}

/// One aggregate bucket of [`SLA_MINUTES_TABLE`], as the SLA engine seals
/// it (DESIGN.md §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaMinuteRow {
    /// The scored orchestrator, `0x` hex.
    pub orchestrator: String,
    /// The model id.
    pub model_id: String,
    /// The gateway region.
    pub region: String,
    /// `production` or `synthetic`.
    pub origin: String,
    /// The bucket's UTC minute, Unix seconds (a multiple of 60).
    pub minute_start: u64,
    /// Attempts that started in the minute.
    pub attempts: u64,
    /// Attempts with a startup success.
    pub startup_successes: u64,
    /// Swaps charged to the orchestrator.
    pub swaps: u64,
    /// Failures charged to the orchestrator.
    pub failures: u64,
    /// Failures excused as client-caused.
    pub excused: u64,
    /// Inference minutes delivered.
    pub inference_minutes: f64,
    /// Prompt-to-first-frame p50, ms (`None` without samples).
    pub ptff_p50_ms: Option<f64>,
    /// PTFF p95, ms.
    pub ptff_p95_ms: Option<f64>,
    /// PTFF p99, ms.
    pub ptff_p99_ms: Option<f64>,
    /// Higher replaces lower for the same bucket (e.g. ms when computed).
    pub version: u64,
}
