//! The go-livepeer adapter: every family, untidy real values, and no panic
//! on any input.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{Value as Json, json};
use vouch_schema::{Event, Family};
use vouch_sdk::adapter::{self, AdapterError, MAX_EVENT_JSON_BYTES};
use vouch_sdk::redact::{RedactionConfig, Redactor};
use vouch_testkit::fixtures::kafka_samples as fixtures;

#[test]
fn untidy_fixture_values_are_kept_exactly() {
    let events: Vec<Event> = fixtures()
        .iter()
        .map(|f| adapter::from_kafka_line(f.to_string().as_bytes()).unwrap())
        .collect();
    let discovery = &events[0];
    assert_eq!(discovery.family, Family::DiscoveryResults);
    // A number as a string stays a string; the header reads it leniently.
    assert_eq!(discovery.get("/0/latency_ms"), Some(&json!("79")));
    assert_eq!(discovery.get_u64("/0/latency_ms"), Some(79));
    assert_eq!(discovery.ts, Some(1768483782392));
    // Empty strings are kept in the body and left out of the header.
    let error = &events[1];
    assert_eq!(error.get("/pipeline_id"), Some(&json!("")));
    assert_eq!(error.pipeline_id, None);
    assert_eq!(error.model_id.as_deref(), Some("streamdiffusion-sdxl-faceid"));
    assert_eq!(error.subtype.as_deref(), Some("error"));
    // Nulls are kept.
    let status = &events[3];
    assert_eq!(status.get("/inference_status/last_error"), Some(&Json::Null));
    assert_eq!(
        status.orchestrator.map(|a| a.to_string()).as_deref(),
        Some("0x52cf2968b3dc6016778742d3539449a6597d5954")
    );
    // An empty orchestrator address is no address.
    let closed = &events[4];
    assert_eq!(closed.orchestrator, None);
    assert_eq!(closed.subtype.as_deref(), Some("gateway_ingest_stream_closed"));
    let payment = &events[5];
    assert_eq!(payment.request_id.as_deref(), Some("499ae98f"));
    assert_eq!(payment.get("/numTickets"), Some(&json!("2")));
}

#[test]
fn every_family_is_accepted_in_both_forms() {
    let samples = [
        (
            "stream_trace",
            json!({"type": "gateway_receive_stream_request", "timestamp": 1,
            "stream_id": "s", "pipeline_id": "", "request_id": "r",
            "orchestrator_info": {"address": "", "url": ""}}),
        ),
        (
            "stream_trace",
            json!({"type": "orchestrator_swap", "pipeline": "m", "message": "x",
            "request_id": "r", "stream_id": "s"}),
        ),
        ("stream_trace", json!({"type": "runner_send_first_processed_segment", "timestamp": "2"})),
        (
            "ai_stream_status",
            json!({"type": "status", "state": "ONLINE",
            "input_status": {"fps": "15"}, "inference_status": {"fps": 15.1}}),
        ),
        ("ai_stream_events", json!({"type": "params_update", "params": {}, "pipeline": "m"})),
        (
            "ai_stream_events",
            json!({"type": "restart", "restart_count": 1,
            "restart_time": 0, "restart_logs": null}),
        ),
        ("stream_ingest_metrics", json!({"timestamp": 3, "stats": {"track_stats": []}})),
        ("discovery_results", json!([{"address": "0x1", "url": "", "latency_ms": "9"}])),
        ("network_capabilities", json!([{"address": "0x1", "hardware": [{"gpu_info": {}}]}])),
        ("create_new_payment", json!({"clientIP": "", "requestID": "r", "numTickets": "2"})),
        ("gpu_stats", json!({"source": "proxy"})),
        ("probe", json!({})),
        ("some_future_family", json!(null)),
    ];
    for (family, data) in samples {
        let bytes = data.to_string();
        let e = adapter::from_go_livepeer(family, bytes.as_bytes(), 77).unwrap();
        assert_eq!(e.family.as_str(), family);
        assert_eq!(e.data, data);
        assert!(e.ts.is_some());
        assert_eq!(Event::decode(&e.encode()).unwrap(), e);
        let line =
            json!({"id": "x", "type": family, "timestamp": "5", "gateway": "", "data": data});
        let k = adapter::from_kafka_line(line.to_string().as_bytes()).unwrap();
        assert_eq!(k.to_kafka_json(), line);
    }
}

#[test]
fn malformed_input_is_a_typed_error() {
    let cases: [(&str, &[u8]); 6] = [
        ("stream_trace", b""),
        ("stream_trace", b"{\"a\":"),
        ("stream_trace", b"\xff\xfe"),
        ("stream_trace", b"{} trailing"),
        ("STREAM_TRACE", b"{}"),
        ("a/b", b"{}"),
    ];
    for (family, data) in cases {
        assert!(adapter::from_go_livepeer(family, data, 1).is_err(), "{family} {data:?}");
    }
    let too_big = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_EVENT_JSON_BYTES));
    assert_eq!(
        adapter::from_go_livepeer("probe", too_big.as_bytes(), 1),
        Err(AdapterError::TooLarge { len: too_big.len(), max: MAX_EVENT_JSON_BYTES })
    );
    let long_family = "f".repeat(65);
    assert!(matches!(
        adapter::from_go_livepeer(&long_family, b"{}", 1),
        Err(AdapterError::BadFamily(_))
    ));
    for line in [&b"{\"type\": 5, \"data\": {}}"[..], b"{\"type\": \"\", \"data\": {}}", b"null"] {
        assert!(adapter::from_kafka_line(line).is_err());
    }
    // Error messages do not echo the input.
    let err = adapter::from_go_livepeer("probe", b"{\"secret\": 203.0.113.5.1}", 1).unwrap_err();
    assert!(!err.to_string().contains("203.0.113"), "{err}");
}

/// JSON values of every shape, including untidy ones.
fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        // Quarters print and parse back exactly.
        any::<i32>().prop_map(|n| json!(f64::from(n) / 4.0)),
        "[a-zA-Z0-9 .:_-]{0,24}".prop_map(Json::String),
        Just(json!("")),
        Just(json!("203.0.113.9")),
        Just(json!("GPU-0a1b2c3d-1111-2222-3333-444455556666")),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec(
                (
                    // No URL members: IP literals are public inside those.
                    prop::sample::select(
                        &[
                            "a",
                            "b",
                            "type",
                            "stream_id",
                            "message",
                            "clientIP",
                            "params",
                            "last_params",
                            "gpu_info",
                            "id",
                            "Status",
                            "x_y",
                            "fps",
                            "",
                        ][..]
                    )
                    .prop_map(str::to_owned),
                    inner
                ),
                0..6
            )
            .prop_map(|members| Json::Object(members.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn random_bytes_never_panic(family in ".{0,80}", bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = adapter::from_go_livepeer(&family, &bytes, 1);
        let _ = adapter::from_kafka_line(&bytes);
    }

    #[test]
    fn json_shaped_bytes_never_panic(prefix in "[\\[\\{\"a-z0-9:,\\]\\} ]{0,64}") {
        let _ = adapter::from_kafka_line(prefix.as_bytes());
        let _ = adapter::from_go_livepeer("probe", prefix.as_bytes(), 1);
    }

    #[test]
    fn any_json_event_round_trips_and_redacts_cleanly(data in json_value(), ts in any::<u64>()) {
        let bytes = serde_json::to_vec(&data).unwrap();
        let event = adapter::from_go_livepeer("ai_stream_status", &bytes, ts).unwrap();
        prop_assert_eq!(&event.data, &data);
        prop_assert_eq!(Event::decode(&event.encode()).unwrap(), event.clone());
        let line = json!({"type": "stream_trace", "data": data, "timestamp": ts.to_string()});
        let from_line = adapter::from_kafka_line(line.to_string().as_bytes()).unwrap();
        prop_assert_eq!(from_line.to_kafka_json(), line);

        let mut redacted = event;
        Redactor::new(&RedactionConfig::default(), [1; 32]).apply(&mut redacted);
        prop_assert!(redacted.validate().is_ok());
        let text = redacted.data.to_string();
        prop_assert!(!text.contains("203.0.113.9"));
        prop_assert!(!text.contains("GPU-0a1b2c3d"));
        prop_assert!(!text.contains("\"clientIP\""));
        prop_assert!(!text.contains("\"params\""));
    }
}
