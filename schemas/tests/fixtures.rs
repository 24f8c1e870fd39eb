//! Real go-livepeer events (tests/data/go-livepeer-kafka-samples.json, a copy
//! of shared/fixtures/go-livepeer/kafka-stream-samples.json) through the
//! adapter and the codec, and the golden batch vector under `vectors/`.
//!
//! Regenerate the vector after an intended format change with
//! `VOUCH_BLESS=1 cargo test -p vouch-schema --test fixtures`, and say why in
//! the commit: other implementations test against these bytes.

use std::path::PathBuf;

use serde_json::{Map, Value as Json, json};
use vouch_schema::{Event, Family, Origin, TelemetryBatch};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn samples() -> Vec<Json> {
    let path = crate_dir().join("tests/data/go-livepeer-kafka-samples.json");
    let text = std::fs::read_to_string(&path).expect("fixture file");
    match serde_json::from_str(&text).expect("fixture JSON") {
        Json::Array(items) => items,
        other => panic!("fixture is not an array: {other}"),
    }
}

fn event(json: &Json) -> Event {
    Event::from_kafka_json(json).expect("every fixture converts")
}

#[test]
fn every_fixture_round_trips_through_cbor_to_the_same_json() {
    let samples = samples();
    assert_eq!(samples.len(), 8);
    for json in &samples {
        let e = event(json);
        e.validate().expect("adapter output is valid");
        let bytes = e.encode();
        let back = Event::decode(&bytes).expect("decodes");
        assert_eq!(back, e, "event changed through CBOR: {json}");
        assert_eq!(back.to_kafka_json(), *json, "Kafka JSON not rebuilt");
        assert_eq!(back.encode(), bytes, "re-encoding differs");
    }
    // And as one batch.
    let events: Vec<Event> = samples.iter().map(event).collect();
    let batch = TelemetryBatch::new(vec![0xab; 32], events);
    let back = TelemetryBatch::decode(&batch.encode()).expect("batch decodes");
    let rebuilt: Vec<Json> = back.events.iter().map(Event::to_kafka_json).collect();
    assert_eq!(rebuilt, samples);
}

#[test]
fn unknown_fields_and_families_are_kept() {
    let mut json = samples()[4].clone();
    json["type"] = json!("some_future_family");
    json["partition_hint"] = json!({"nested": [1, 2.5, null]});
    json["data"]["new_field"] = json!("x");
    let e = event(&json);
    assert_eq!(e.family, Family::Other("some_future_family".into()));
    let back = Event::decode(&e.encode()).expect("decodes");
    assert_eq!(back.to_kafka_json(), json);
}

#[test]
fn normalized_fields_of_known_events() {
    let s = samples();

    let discovery = event(&s[0]);
    assert_eq!(discovery.family, Family::DiscoveryResults);
    assert_eq!(discovery.ts, Some(1_768_483_782_392), "from the envelope's string timestamp");
    assert_eq!((discovery.subtype(), discovery.request_id.as_deref()), (None, None));
    assert_eq!(discovery.get_u64("/0/latency_ms"), Some(79), "number as string");

    let error = event(&s[1]);
    assert_eq!(error.family, Family::AiStreamEvents);
    assert_eq!(error.subtype(), Some("error"));
    assert_eq!(error.request_id.as_deref(), Some("5291f1cf"));
    assert_eq!(error.stream_id.as_deref(), Some("stream-3hc4ok-mkfh9jxs"));
    assert_eq!(error.model_id.as_deref(), Some("streamdiffusion-sdxl-faceid"));
    assert_eq!(error.pipeline_id, None, "empty string is unknown");
    assert_eq!(error.ts, Some(1_768_483_619_196));

    let status = event(&s[3]);
    assert_eq!(status.family, Family::AiStreamStatus);
    assert_eq!(status.subtype(), Some("status"));
    assert_eq!(
        status.orchestrator.map(|a| a.to_hex()).as_deref(),
        Some("0x52cf2968b3dc6016778742d3539449a6597d5954")
    );
    assert_eq!(status.model_id.as_deref(), Some("streamdiffusion-sdxl-faceid"));
    assert_eq!(status.ts, Some(1_768_483_618_933), "data.timestamp wins over the envelope's");
    assert_eq!(status.get_str("/state"), Some("DEGRADED_INPUT"));
    assert_eq!(status.get_f64("/inference_status/fps"), Some(15.089916320451984));
    assert_eq!(status.get("/inference_status/last_error"), Some(&Json::Null));
    assert_eq!(status.get_str("/inference_status/last_error"), None);

    let closed = event(&s[4]);
    assert_eq!(closed.family, Family::StreamTrace);
    assert_eq!(closed.subtype(), Some("gateway_ingest_stream_closed"));
    assert_eq!(closed.orchestrator, None, "empty orchestrator address is unknown");

    let payment = event(&s[5]);
    assert_eq!(payment.family, Family::CreateNewPayment);
    assert_eq!(payment.request_id.as_deref(), Some("499ae98f"), "from requestID");
    assert_eq!(
        payment.manifest_id, None,
        "payment manifestID is <capability>_<model>, not a session"
    );
    assert_eq!(payment.get_u64("/numTickets"), Some(2));
    assert_eq!(payment.get_f64("/winProb"), Some(0.0009930487));
    assert_eq!(payment.get_f64("/price"), None, "units in the string");

    let metrics = event(&s[2]);
    assert_eq!(metrics.family, Family::StreamIngestMetrics);
    assert_eq!(metrics.get_f64("/stats/track_stats/0/jitter"), Some(8.667245625521273));
    assert_eq!(metrics.origin, None);
}

#[test]
fn sdk_path_uses_the_fallback_and_rebuilds_a_minimal_envelope() {
    let data = json!({"type": "probe_start", "origin": "synthetic", "stream_id": "s1"});
    let e = Event::from_type_and_data("probe", data.clone(), 42).expect("valid");
    assert_eq!(
        (e.family.clone(), e.ts, e.origin),
        (Family::Probe, Some(42), Some(Origin::Synthetic))
    );
    assert_eq!(e.kafka_envelope, None);
    assert_eq!(e.to_kafka_json(), json!({"type": "probe", "timestamp": "42", "data": data}));
    assert_eq!(Event::decode(&e.encode()), Ok(e));
}

// --- golden vector -------------------------------------------------------

const VECTOR_EVENTS: [usize; 3] = [0, 3, 4];

/// The normalized header as JSON, for the vector file (informative for other
/// implementations: their adapter must derive the same header to get the same bytes).
fn header_json(e: &Event) -> Json {
    let mut m = Map::new();
    m.insert("family".into(), json!(e.family.as_str()));
    let mut opt = |name: &str, v: Option<Json>| {
        if let Some(v) = v {
            m.insert(name.into(), v);
        }
    };
    opt("ts", e.ts.map(|t| json!(t)));
    opt("subtype", e.subtype.as_ref().map(|s| json!(s)));
    opt("stream_id", e.stream_id.as_ref().map(|s| json!(s)));
    opt("request_id", e.request_id.as_ref().map(|s| json!(s)));
    opt("manifest_id", e.manifest_id.as_ref().map(|s| json!(s)));
    opt("pipeline_id", e.pipeline_id.as_ref().map(|s| json!(s)));
    opt("model_id", e.model_id.as_ref().map(|s| json!(s)));
    opt("orchestrator", e.orchestrator.map(|a| json!(a.to_hex())));
    opt("gateway_region", e.gateway_region.as_ref().map(|s| json!(s)));
    opt("origin", e.origin.map(|o| json!(o.as_str())));
    Json::Object(m)
}

#[test]
fn golden_batch_vector() {
    let dir = crate_dir().join("vectors");
    let json_path = dir.join("batch-1.json");
    let hex_path = dir.join("batch-1.cbor.hex");

    if std::env::var_os("VOUCH_BLESS").is_some() {
        let s = samples();
        let input: Vec<Json> = VECTOR_EVENTS.iter().map(|i| s[*i].clone()).collect();
        let events: Vec<Event> = input.iter().map(event).collect();
        let file = json!({
            "description": "TelemetryBatch golden vector: three real go-livepeer events \
                (discovery_results, ai_stream_status, stream_trace) converted with the \
                adapter rules of telemetry.cddl; certificate is 32 bytes of 0xab. \
                batch-1.cbor.hex is the deterministic CBOR encoding.",
            "schema": "vouch/1",
            "certificate": hex::encode([0xab; 32]),
            "events": input,
            "normalized": events.iter().map(header_json).collect::<Vec<_>>(),
        });
        let batch = TelemetryBatch::new(vec![0xab; 32], events);
        let pretty = serde_json::to_string_pretty(&file).expect("serializes");
        std::fs::write(&json_path, pretty + "\n").expect("write json");
        std::fs::write(&hex_path, hex::encode(batch.encode()) + "\n").expect("write hex");
    }

    let file: Json = serde_json::from_str(&std::fs::read_to_string(&json_path).expect("json file"))
        .expect("vector JSON");
    let bytes = hex::decode(std::fs::read_to_string(&hex_path).expect("hex file").trim())
        .expect("vector hex");
    let certificate = hex::decode(file["certificate"].as_str().expect("certificate")).expect("hex");
    assert_eq!(certificate, vec![0xab; 32]);
    let input = file["events"].as_array().expect("events");
    assert_eq!(input.len(), VECTOR_EVENTS.len());
    let events: Vec<Event> = input.iter().map(event).collect();

    // Encoding the input gives exactly the file's bytes.
    let batch = TelemetryBatch::new(certificate.clone(), events.clone());
    assert_eq!(hex::encode(batch.encode()), hex::encode(&bytes));

    // Decoding the file's bytes gives back the input, and the derived headers.
    let decoded = TelemetryBatch::decode(&bytes).expect("vector decodes");
    assert_eq!(decoded, batch);
    assert_eq!(decoded.events.iter().map(Event::to_kafka_json).collect::<Vec<_>>(), *input);
    let headers: Vec<Json> = decoded.events.iter().map(header_json).collect();
    assert_eq!(Json::Array(headers), file["normalized"]);

    // The vector's events are the fixture's, unchanged.
    let s = samples();
    for (i, json) in VECTOR_EVENTS.iter().zip(input) {
        assert_eq!(&s[*i], json);
    }
}
