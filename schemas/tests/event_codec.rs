//! The event and batch codec: property tests (arbitrary JSON-ish events
//! round-trip; arbitrary bytes never panic and decode only from canonical
//! encodings) and one test per malformed case, each with its own error.

use ciborium::Value as Cbor;
use proptest::prelude::*;
use serde_json::{Map, Number, Value as Json, json};
use vouch_schema::cbor::{self, CborError, Malformed, MapError};
use vouch_schema::event::{MAX_FAMILY_LEN, MAX_FIELD_LEN, MAX_JSON_DEPTH};
use vouch_schema::limits::{MAX_BATCH_EVENTS, MAX_ENVELOPE_BYTES};
use vouch_schema::{BatchError, Event, EventError, TelemetryBatch};

// --- strategies ------------------------------------------------------------

/// Member names: mostly the ones the adapter reads, so extraction is exercised.
fn member_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "type", "timestamp", "stream_id", "request_id", "requestID", "manifest_id",
            "pipeline_id", "pipeline", "model_id", "gateway_region", "origin", "address",
            "orchestrator_info", "id", "gateway", "data",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ]
}

fn json_leaf() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<u64>().prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Json::Number)),
        prop::sample::select(vec![0.0, -0.0, 1.0, 0.5, 1e300, 5e-324, 15.089916320451984])
            .prop_filter_map("finite", |f| Number::from_f64(f).map(Json::Number)),
        "[0-9]{0,21}".prop_map(Json::String),
        "\\PC{0,16}".prop_map(Json::String),
        prop::sample::select(vec![
            "",
            "synthetic",
            "production",
            "0x52cf2968b3dc6016778742d3539449a6597d5954",
            "0X52CF2968B3DC6016778742D3539449A6597D5954",
        ])
        .prop_map(|s| json!(s)),
    ]
}

fn json_value() -> impl Strategy<Value = Json> {
    json_leaf().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec((member_name(), inner), 0..6)
                .prop_map(|members| Json::Object(members.into_iter().collect())),
        ]
    })
}

fn family_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "stream_trace",
            "ai_stream_status",
            "ai_stream_events",
            "stream_ingest_metrics",
            "discovery_results",
            "network_capabilities",
            "create_new_payment",
            "gpu_stats",
            "probe",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,64}",
        "\\PC{1,16}",
    ]
}

/// A go-livepeer Kafka envelope with arbitrary optional and extra members.
fn kafka_json() -> impl Strategy<Value = Json> {
    (
        family_name(),
        json_value(),
        prop::option::of(prop_oneof!["[0-9a-f-]{36}".prop_map(Json::String), json_leaf()]),
        prop::option::of(prop_oneof!["[0-9]{0,14}".prop_map(Json::String), json_leaf()]),
        prop::option::of(json_leaf()),
        prop::collection::vec(("[a-z]{1,6}", json_value()), 0..3),
    )
        .prop_map(|(family, data, id, ts, gateway, extra)| {
            let mut m = Map::new();
            m.extend(id.map(|v| ("id".to_owned(), v)));
            m.insert("type".to_owned(), Json::String(family));
            m.extend(ts.map(|v| ("timestamp".to_owned(), v)));
            m.extend(gateway.map(|v| ("gateway".to_owned(), v)));
            m.insert("data".to_owned(), data);
            for (k, v) in extra {
                m.entry(k).or_insert(v);
            }
            Json::Object(m)
        })
}

/// Bytes that decode, if at all, only from their own canonical encoding.
fn assert_canonical_or_rejected(bytes: &[u8]) {
    if let Ok(batch) = TelemetryBatch::decode(bytes) {
        assert_eq!(batch.encode(), bytes);
    }
    if let Ok(event) = Event::decode(bytes) {
        assert_eq!(event.encode(), bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn kafka_events_round_trip(json in kafka_json()) {
        let event = Event::from_kafka_json(&json).expect("well-formed envelope converts");
        prop_assert_eq!(event.validate(), Ok(()));
        let bytes = event.encode();
        let back = Event::decode(&bytes).expect("decodes");
        prop_assert_eq!(&back, &event);
        prop_assert_eq!(back.to_kafka_json(), json);
        prop_assert_eq!(back.encode(), bytes);
    }

    #[test]
    fn sdk_events_round_trip(family in family_name(), data in json_value(), ts in any::<u64>()) {
        let event = Event::from_type_and_data(&family, data.clone(), ts).expect("valid");
        let back = Event::decode(&event.encode()).expect("decodes");
        prop_assert_eq!(back.data(), &data);
        prop_assert_eq!(back, event);
    }

    #[test]
    fn batches_round_trip(
        cert in prop::collection::vec(any::<u8>(), 0..80),
        events in prop::collection::vec(kafka_json(), 0..5),
    ) {
        let events: Vec<Event> =
            events.iter().map(|j| Event::from_kafka_json(j).expect("converts")).collect();
        let batch = TelemetryBatch::new(cert, events);
        let bytes = batch.encode();
        prop_assert_eq!(TelemetryBatch::decode(&bytes), Ok(batch));
    }

    #[test]
    fn arbitrary_json_never_panics_the_adapter(json in json_value(), ts in any::<u64>()) {
        let _ = Event::from_kafka_json(&json);
        let _ = Event::from_type_and_data("x", json, ts);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        assert_canonical_or_rejected(&bytes);
    }

    #[test]
    fn mutated_batches_never_panic(
        json in kafka_json(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let event = Event::from_kafka_json(&json).expect("converts");
        let mut bytes = TelemetryBatch::new(vec![0xab; 4], vec![event]).encode();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        assert_canonical_or_rejected(&bytes);
        // The same bytes as a lone event (skip the batch header).
        if bytes.len() > 16 {
            assert_canonical_or_rejected(&bytes[16..]);
        }
    }
}

// --- malformed events: one error each -------------------------------------

fn int(v: i128) -> Cbor {
    Cbor::Integer(ciborium::value::Integer::try_from(v).expect("in CBOR range"))
}

fn text(s: &str) -> Cbor {
    Cbor::Text(s.to_owned())
}

/// An event map `{0: "stream_trace", 1: {}}` plus `extra` entries.
fn event_with(extra: Vec<(Cbor, Cbor)>) -> Cbor {
    let mut entries = vec![(int(0), text("stream_trace")), (int(1), Cbor::Map(vec![]))];
    entries.extend(extra);
    Cbor::Map(entries)
}

fn data_event(data: Cbor) -> Cbor {
    Cbor::Map(vec![(int(0), text("x")), (int(1), data)])
}

fn nested(depth: usize) -> Cbor {
    (0..depth).fold(int(1), |inner, _| Cbor::Array(vec![inner]))
}

fn decode_event(value: &Cbor) -> Result<Event, EventError> {
    Event::decode(&cbor::to_vec(value))
}

#[test]
fn each_malformed_event_has_its_own_error() {
    let big = "x".repeat(MAX_FIELD_LEN + 1);
    let cases: Vec<(&str, Cbor, EventError)> = vec![
        ("not a map", Cbor::Array(vec![]), EventError::Structure(MapError::NotAMap)),
        (
            "text key",
            event_with(vec![(text("k"), int(1))]),
            EventError::Structure(MapError::BadKey),
        ),
        (
            "unknown key",
            event_with(vec![(int(13), int(1))]),
            EventError::Structure(MapError::UnknownKey(13)),
        ),
        (
            "duplicate key",
            Cbor::Map(vec![(int(0), text("x")), (int(0), text("x")), (int(1), Cbor::Null)]),
            EventError::DuplicateKey(0),
        ),
        ("missing family", Cbor::Map(vec![(int(1), Cbor::Null)]), EventError::Missing("family")),
        ("missing data", Cbor::Map(vec![(int(0), text("x"))]), EventError::Missing("data")),
        (
            "family not text",
            Cbor::Map(vec![(int(0), int(1)), (int(1), Cbor::Null)]),
            EventError::WrongType("family"),
        ),
        ("negative ts", event_with(vec![(int(2), int(-1))]), EventError::WrongType("ts")),
        ("ts as text", event_with(vec![(int(2), text("1"))]), EventError::WrongType("ts")),
        (
            "stream_id as bytes",
            event_with(vec![(int(4), Cbor::Bytes(vec![1]))]),
            EventError::WrongType("stream_id"),
        ),
        (
            "null header field",
            event_with(vec![(int(5), Cbor::Null)]),
            EventError::WrongType("request_id"),
        ),
        (
            "empty family",
            Cbor::Map(vec![(int(0), text("")), (int(1), Cbor::Null)]),
            EventError::Empty("family"),
        ),
        ("empty subtype", event_with(vec![(int(3), text(""))]), EventError::Empty("subtype")),
        (
            "long family",
            Cbor::Map(vec![(int(0), text(&big[..=MAX_FAMILY_LEN])), (int(1), Cbor::Null)]),
            EventError::Oversize { field: "family", len: MAX_FAMILY_LEN + 1, max: MAX_FAMILY_LEN },
        ),
        (
            "long model_id",
            event_with(vec![(int(8), text(&big))]),
            EventError::Oversize { field: "model_id", len: MAX_FIELD_LEN + 1, max: MAX_FIELD_LEN },
        ),
        (
            "short orchestrator",
            event_with(vec![(int(9), Cbor::Bytes(vec![0; 19]))]),
            EventError::WrongLength { field: "orchestrator", expected: 20, actual: 19 },
        ),
        (
            "orchestrator as text",
            event_with(vec![(int(9), text("0x00"))]),
            EventError::WrongType("orchestrator"),
        ),
        ("unknown origin", event_with(vec![(int(11), int(2))]), EventError::UnknownOrigin(2)),
        (
            "origin as text",
            event_with(vec![(int(11), text("synthetic"))]),
            EventError::WrongType("origin"),
        ),
        (
            "kafka not a map",
            event_with(vec![(int(12), Cbor::Array(vec![]))]),
            EventError::WrongType("kafka"),
        ),
        (
            "kafka int member",
            event_with(vec![(int(12), Cbor::Map(vec![(int(1), Cbor::Null)]))]),
            EventError::WrongType("kafka"),
        ),
        (
            "kafka type member",
            event_with(vec![(int(12), Cbor::Map(vec![(text("type"), text("x"))]))]),
            EventError::ReservedMember("type".into()),
        ),
        (
            "kafka duplicate member",
            event_with(vec![(
                int(12),
                Cbor::Map(vec![(text("id"), Cbor::Null), (text("id"), Cbor::Null)]),
            )]),
            EventError::DuplicateJsonKey("id".into()),
        ),
        ("data too deep", data_event(nested(MAX_JSON_DEPTH + 1)), EventError::TooDeep),
        ("bytes in data", data_event(Cbor::Bytes(vec![])), EventError::NotJson("byte string")),
        ("tag in data", data_event(Cbor::Tag(1, Box::new(int(0)))), EventError::NotJson("tag")),
        (
            "int key in data",
            data_event(Cbor::Map(vec![(int(1), Cbor::Null)])),
            EventError::NotJson("map key that is not text"),
        ),
        (
            "integer below i64",
            data_event(int(i128::from(i64::MIN) - 1)),
            EventError::NotJson("integer outside the 64-bit range"),
        ),
        ("NaN in data", data_event(Cbor::Float(f64::NAN)), EventError::NotJson("non-finite float")),
        (
            "infinity in data",
            data_event(Cbor::Float(f64::INFINITY)),
            EventError::NotJson("non-finite float"),
        ),
        (
            "duplicate JSON key",
            data_event(Cbor::Map(vec![(text("a"), int(1)), (text("a"), int(2))])),
            EventError::DuplicateJsonKey("a".into()),
        ),
    ];
    let mut errors = Vec::new();
    for (name, value, expected) in cases {
        assert_eq!(decode_event(&value).err(), Some(expected.clone()), "{name}");
        // The same event inside a batch reports its index.
        let batch = Cbor::Map(vec![
            (int(0), text("vouch/1")),
            (int(1), Cbor::Bytes(vec![])),
            (int(2), Cbor::Array(vec![event_with(vec![]), value])),
        ]);
        assert_eq!(
            TelemetryBatch::decode(&cbor::to_vec(&batch)),
            Err(BatchError::Event { index: 1, source: expected.clone() }),
            "{name} in a batch"
        );
        if !errors.contains(&expected) {
            errors.push(expected);
        }
    }
    // Distinct errors have distinct messages (cases of one kind, such as a
    // negative or a text `ts`, share their error).
    let messages: std::collections::BTreeSet<String> =
        errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(messages.len(), errors.len(), "{messages:#?}");
    assert_eq!(errors.len(), 28);
}

#[test]
fn non_canonical_event_bytes_are_rejected() {
    // {0: "x", 1: null} with keys out of order, and with an over-long key head.
    let unsorted = [0xa2, 0x01, 0xf6, 0x00, 0x61, b'x'];
    assert_eq!(Event::decode(&unsorted), Err(EventError::Cbor(CborError::NonCanonical)));
    let long_head = [0xa2, 0x18, 0x00, 0x61, b'x', 0x01, 0xf6];
    assert_eq!(Event::decode(&long_head), Err(EventError::Cbor(CborError::NonCanonical)));
    // `undefined` reads as null, so it is not the canonical form of anything.
    let undefined = [0xa2, 0x00, 0x61, b'x', 0x01, 0xf7];
    assert_eq!(Event::decode(&undefined), Err(EventError::Cbor(CborError::NonCanonical)));
    let trailing = [0xa2, 0x00, 0x61, b'x', 0x01, 0xf6, 0x00];
    assert_eq!(Event::decode(&trailing), Err(EventError::Cbor(CborError::TrailingBytes)));
    // A double that fits a half is non-canonical (1.0 as f64).
    let double = [0xa2, 0x00, 0x61, b'x', 0x01, 0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0];
    assert_eq!(Event::decode(&double), Err(EventError::Cbor(CborError::NonCanonical)));
}

#[test]
fn limits_are_inclusive() {
    let deepest = data_event(nested(MAX_JSON_DEPTH));
    let event = decode_event(&deepest).expect("depth at the limit decodes");
    let batch = TelemetryBatch::new(vec![], vec![event.clone()]);
    assert_eq!(TelemetryBatch::decode(&batch.encode()), Ok(batch));
    // The adapter refuses what decoding would refuse.
    let mut too_deep = event.data.tree().clone();
    too_deep = json!([too_deep]);
    assert_eq!(Event::from_type_and_data("x", too_deep.clone(), 1), Err(EventError::TooDeep));
    let envelope = json!({"type": "x", "data": 1, "extra": too_deep});
    assert_eq!(Event::from_kafka_json(&envelope), Err(EventError::TooDeep));
    let field = "y".repeat(MAX_FIELD_LEN);
    let max = Cbor::Map(vec![
        (int(0), text(&"f".repeat(MAX_FAMILY_LEN))),
        (int(1), Cbor::Null),
        (int(4), text(&field)),
    ]);
    assert_eq!(decode_event(&max).map(|e| e.stream_id.map(|s| s.len())), Ok(Some(MAX_FIELD_LEN)));
}

#[test]
fn adapter_rejects_only_structurally_impossible_json() {
    assert_eq!(Event::from_kafka_json(&json!([1])), Err(EventError::NotAnObject));
    assert_eq!(Event::from_kafka_json(&json!({"data": {}})), Err(EventError::Missing("type")));
    assert_eq!(
        Event::from_kafka_json(&json!({"type": 1, "data": {}})),
        Err(EventError::WrongType("type"))
    );
    assert_eq!(Event::from_kafka_json(&json!({"type": ""})), Err(EventError::Empty("type")));
    assert_eq!(Event::from_kafka_json(&json!({"type": "x"})), Err(EventError::Missing("data")));
    let long = "t".repeat(MAX_FAMILY_LEN + 1);
    assert_eq!(
        Event::from_type_and_data(&long, Json::Null, 0),
        Err(EventError::Oversize { field: "type", len: MAX_FAMILY_LEN + 1, max: MAX_FAMILY_LEN })
    );
    // Untidy but structurally fine: kept, never an error.
    let untidy = json!({"id": null, "type": "stream_trace", "timestamp": "soon", "data": "text"});
    let event = Event::from_kafka_json(&untidy).expect("kept");
    assert_eq!((event.ts, event.to_kafka_json()), (None, untidy));
}

// --- malformed batches: one error each ------------------------------------

fn batch_with(entries: Vec<(Cbor, Cbor)>) -> Result<TelemetryBatch, BatchError> {
    TelemetryBatch::decode(&cbor::to_vec(&Cbor::Map(entries)))
}

fn good_entries() -> Vec<(Cbor, Cbor)> {
    vec![
        (int(0), text("vouch/1")),
        (int(1), Cbor::Bytes(vec![0xab; 32])),
        (int(2), Cbor::Array(vec![event_with(vec![])])),
    ]
}

fn replace(key: usize, value: Option<Cbor>) -> Vec<(Cbor, Cbor)> {
    let mut e = good_entries();
    match value {
        Some(v) => e[key].1 = v,
        None => {
            e.remove(key);
        }
    }
    e
}

#[test]
fn each_malformed_batch_has_its_own_error() {
    assert!(batch_with(good_entries()).is_ok());
    let minimal = Cbor::Map(vec![(int(0), text("e")), (int(1), Cbor::Null)]);
    let cases: Vec<(&str, Result<TelemetryBatch, BatchError>, BatchError)> = vec![
        (
            "oversize",
            TelemetryBatch::decode(&vec![0; MAX_ENVELOPE_BYTES + 1]),
            BatchError::Oversize(MAX_ENVELOPE_BYTES + 1),
        ),
        (
            "empty input",
            TelemetryBatch::decode(&[]),
            BatchError::Cbor(CborError::Malformed(Malformed::At {
                what: "unexpected end of input",
                at: 0,
            })),
        ),
        (
            "trailing",
            TelemetryBatch::decode(&[0xa0, 0x00]),
            BatchError::Cbor(CborError::TrailingBytes),
        ),
        (
            "non-canonical",
            TelemetryBatch::decode(&[0xbf, 0xff]),
            BatchError::Cbor(CborError::NonCanonical),
        ),
        ("not a map", TelemetryBatch::decode(&[0x80]), BatchError::Structure(MapError::NotAMap)),
        (
            "unknown key",
            batch_with([good_entries(), vec![(int(3), Cbor::Null)]].concat()),
            BatchError::Structure(MapError::UnknownKey(3)),
        ),
        (
            "duplicate key",
            batch_with([good_entries(), vec![(int(2), Cbor::Array(vec![]))]].concat()),
            BatchError::DuplicateKey(2),
        ),
        ("missing schema", batch_with(replace(0, None)), BatchError::Missing("schema")),
        ("missing certificate", batch_with(replace(1, None)), BatchError::Missing("certificate")),
        ("missing events", batch_with(replace(2, None)), BatchError::Missing("events")),
        ("schema not text", batch_with(replace(0, Some(int(1)))), BatchError::WrongType("schema")),
        (
            "certificate not bytes",
            batch_with(replace(1, Some(text("ab")))),
            BatchError::WrongType("certificate"),
        ),
        (
            "events not an array",
            batch_with(replace(2, Some(Cbor::Map(vec![])))),
            BatchError::WrongType("events"),
        ),
        (
            "other schema",
            batch_with(replace(0, Some(text("vouch/2")))),
            BatchError::Schema("vouch/2".into()),
        ),
        (
            "too many events",
            batch_with(replace(2, Some(Cbor::Array(vec![minimal.clone(); MAX_BATCH_EVENTS + 1])))),
            BatchError::TooManyEvents(MAX_BATCH_EVENTS + 1),
        ),
        (
            "bad event",
            batch_with(replace(2, Some(Cbor::Array(vec![Cbor::Null])))),
            BatchError::Event { index: 0, source: EventError::Structure(MapError::NotAMap) },
        ),
    ];
    let mut messages = std::collections::BTreeSet::new();
    for (name, got, expected) in cases {
        match (&got, &expected) {
            // ciborium's wording of malformed input is not ours to pin.
            (
                Err(BatchError::Cbor(CborError::Malformed(_))),
                BatchError::Cbor(CborError::Malformed(_)),
            ) => {}
            _ => assert_eq!(got, Err(expected.clone()), "{name}"),
        }
        assert!(messages.insert(expected.to_string()), "{name}: message not distinct");
    }
    // Exactly the limit is fine.
    let full = batch_with(replace(2, Some(Cbor::Array(vec![minimal; MAX_BATCH_EVENTS]))));
    assert_eq!(full.map(|b| b.events.len()), Ok(MAX_BATCH_EVENTS));
}

#[test]
fn validate_catches_what_decode_would_reject() {
    let event = Event::from_type_and_data("x", Json::Null, 1).expect("valid");
    let mut batch = TelemetryBatch::new(vec![], vec![event; MAX_BATCH_EVENTS]);
    assert_eq!(batch.validate(), Ok(()));
    batch.events.push(batch.events[0].clone());
    assert_eq!(batch.validate(), Err(BatchError::TooManyEvents(MAX_BATCH_EVENTS + 1)));
    assert_eq!(
        TelemetryBatch::decode(&batch.encode()),
        Err(BatchError::TooManyEvents(MAX_BATCH_EVENTS + 1))
    );
    batch.events.truncate(2);
    batch.events[1].model_id = Some(String::new());
    let expected = BatchError::Event { index: 1, source: EventError::Empty("model_id") };
    assert_eq!(batch.validate(), Err(expected.clone()));
    assert_eq!(TelemetryBatch::decode(&batch.encode()), Err(expected));
}
