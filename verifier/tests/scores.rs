//! The real go-livepeer fixtures signed, validated and scored through the
//! verifier's library path (pipeline → SLA engine → the API's JSON bytes),
//! time injected: every fixture becomes its own envelope stamped with its
//! Kafka timestamp, signed by a gateway's delegate. The numbers are the ones
//! worked out by hand from the raw timestamps in sla/tests/fixtures.rs; the
//! API's bytes are identical whatever order the envelopes arrive in.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use serde_json::{Value, json};
use vouch_delegation::authority::{AuthorityView, CachedAuthority};
use vouch_delegation::{Eip712Network, Role};
use vouch_schema::topic::telemetry_topic;
use vouch_schema::{Address, Envelope, Event, MessageId, TelemetryBatch};
use vouch_testkit::actor::Actor;
use vouch_testkit::authority::entry;
use vouch_testkit::fixtures::kafka_samples;
use vouch_testkit::keys;
use vouch_verifier::api::{Params, SlaSource};
use vouch_verifier::scores::{PolicyFiles, Scores};
use vouch_verifier::validate::{Pipeline, Unverified, ValidationConfig};

/// The minute holding the fixture attempt's decision (first event + 120 s)
/// ends here; it seals 360 s later (policy v1), see sla/tests/fixtures.rs.
const SEAL_AT: u64 = 1_768_483_740_000 + 360_000;

/// The fixtures as signed envelopes, one event each, in file order.
fn envelopes() -> (Vec<Vec<u8>>, Address) {
    let all = kafka_samples();
    let stamps: Vec<u64> =
        all.iter().map(|j| j["timestamp"].as_str().unwrap().parse().unwrap()).collect();
    let (first, last) = (*stamps.iter().min().unwrap(), *stamps.iter().max().unwrap());
    let gateway = Actor::issue(
        keys::filled(0x31),
        keys::filled(0x32),
        Role::Gateway,
        "FRA",
        first / 1000 - 60..last / 1000 + 3600,
        Eip712Network::arbitrum_one(),
    );
    let (cert, stream) = (gateway.cert(), gateway.stream_id());
    let out = all
        .iter()
        .zip(&stamps)
        .enumerate()
        .map(|(i, (j, &ts))| {
            let batch = TelemetryBatch::new(cert.clone(), vec![Event::from_kafka_json(j).unwrap()]);
            let id = MessageId {
                stream_id: stream.clone(),
                partition: 0,
                timestamp: ts,
                seq: 0,
                publisher: Address::ZERO,
                msg_chain_id: format!("fixture{i}"),
            };
            Envelope::sign(id, None, batch.encode(), &gateway.delegate).unwrap().encode()
        })
        .collect();
    (out, gateway.principal_address())
}

/// Validates every envelope at its own time and scores what passed, under
/// one authority view: the gateway, and the fixtures' orchestrator.
fn scored(envelopes: &[Vec<u8>], gateway: Address) -> Scores {
    let orchestrator = "0x52cf2968b3dc6016778742d3539449a6597d5954".parse().unwrap();
    let view = AuthorityView::new(
        "test",
        [entry(gateway, Role::Gateway), entry(orchestrator, Role::Orchestrator)],
    );
    let scores = Scores::open(&PolicyFiles::default(), None).unwrap().0;
    scores.set_authority(&view);
    let mut pipeline =
        Pipeline::new(ValidationConfig::default(), Arc::new(CachedAuthority::new(view)));
    for bytes in envelopes {
        let ts = Envelope::decode(bytes).unwrap().id.timestamp;
        let mut msg = Unverified::from_topic(bytes.clone(), &telemetry_topic(0));
        let v = pipeline.validate(&mut msg, ts).unwrap();
        scores.ingest_verified(&v);
    }
    assert!(scores.seal(SEAL_AT).is_some());
    scores
}

fn get(scores: &Scores, route: &str) -> Value {
    let params = Params::new();
    let body = match route {
        "orchestrators" => scores.orchestrators(&params).unwrap(),
        "demand" => scores.demand(&params).unwrap(),
        _ => scores.regions(),
    };
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn signed_fixtures_give_the_hand_computed_numbers_in_any_order() {
    let (mut envelopes, gateway) = envelopes();
    let forward = scored(&envelopes, gateway);
    let list = get(&forward, "orchestrators");
    let o = &list["orchestrators"][0];
    assert_eq!(list["orchestrators"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(o["address"], json!("0x52cf2968b3dc6016778742d3539449a6597d5954"));
    assert_eq!(o["attempts"], json!(1));
    assert_eq!(o["status"], json!("insufficient_data"));
    // One "whip disconnected" before output: client-caused, excused.
    assert_eq!(o["excused_failures"], json!(1));
    // inference_status.fps 15.089916320451984 → 15.09.
    assert_eq!(o["fps"]["p50"], json!(15.09));
    // 1768483618933 − 1768483608933 = 10,000 ms of output = 0.1667 min.
    assert_eq!(o["inference_minutes"], json!(0.1667));
    // The events name no region: the gateway certificate's (FRA) counts.
    assert_eq!(get(&forward, "regions"), json!({"regions": ["FRA"]}));

    envelopes.reverse();
    let backward = scored(&envelopes, gateway);
    let params = Params::new();
    assert_eq!(forward.orchestrators(&params).unwrap(), backward.orchestrators(&params).unwrap());
    assert_eq!(forward.demand(&params).unwrap(), backward.demand(&params).unwrap());
    assert_eq!(forward.snapshot(), backward.snapshot());
}
