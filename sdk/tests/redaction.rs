//! Privacy before signing: no fixture's client IP, prompt or parameters
//! reach a signed envelope, while every fixture survives the adapter and the
//! wire format losslessly before redaction.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{Value as Json, json};
use vouch_delegation::Role;
use vouch_schema::{Envelope, Event, TelemetryBatch};
use vouch_sdk::adapter;
use vouch_sdk::redact::{RedactionConfig, Redactor};
use vouch_sdk::transport::file::{FileTransport, read_frames};
use vouch_sdk::{Publisher, PublisherSettings, Signer};
use vouch_testkit::fixtures::kafka_samples as fixtures;
use vouch_testkit::publisher::*;

/// Values that must never be published. Each is planted in the corpus.
const SECRETS: &[&str] = &[
    "203.0.113.77",
    "198.51.100.9",
    "2001:db8:4:5::77",
    "PROMPT-SECRET-a-portrait-of-alice",
    "NEGATIVE-PROMPT-SECRET",
    "PARAMS-SECRET-seed-424242",
    "LAST-PARAMS-SECRET-prompt",
    "STATUS-PROMPT-SECRET",
    "RESTART-LOG-SECRET",
    "f2f41bce75e30de92f8c308a6722859b",
    "GPU-0a1b2c3d-1111-2222-3333-444455556666",
    "TRICKLE-SECRET-channel",
];

/// The real fixtures, plus each family again carrying private values the way
/// go-livepeer would send them.
fn corpus() -> Vec<Json> {
    let mut events = fixtures();
    let fixtures = fixtures();
    let by_type = |t: &str| fixtures.iter().find(|f| f["type"] == t).unwrap().clone();

    let mut payment = by_type("create_new_payment");
    payment["data"]["clientIP"] = json!("203.0.113.77");
    events.push(payment);

    let mut status = by_type("ai_stream_status");
    let inference = &mut status["data"]["inference_status"];
    inference["last_params"] = json!({"prompt": "LAST-PARAMS-SECRET-prompt", "height": 512});
    inference["last_restart_logs"] = json!(["RESTART-LOG-SECRET at 198.51.100.9"]);
    inference["last_error"] = json!("client 198.51.100.9 went away");
    status["data"]["prompt"] = json!("STATUS-PROMPT-SECRET");
    events.push(status);

    let mut update = by_type("ai_stream_events");
    update["data"]["type"] = json!("params_update");
    update["data"]["params"] = json!({
        "prompt": "PROMPT-SECRET-a-portrait-of-alice",
        "negative_prompt": "NEGATIVE-PROMPT-SECRET",
        "seed": "PARAMS-SECRET-seed-424242",
    });
    events.push(update);

    let mut error = by_type("ai_stream_events");
    error["data"]["message"] = json!("ice failed for [2001:db8:4:5::77]:5000 (203.0.113.77)");
    error["data"]["publish_url"] = json!("https://o.example/ai/trickle/TRICKLE-SECRET-channel");
    events.push(error);

    events.push(json!({
        "id": "synthetic-caps",
        "type": "network_capabilities",
        "timestamp": "1768483619196",
        "gateway": "",
        "data": [{
            "address": "0x52cf2968b3dc6016778742d3539449a6597d5954",
            "local_address": "0x52cf2968b3dc6016778742d3539449a6597d5954",
            "orch_uri": "https://rtav-orch2.xodeapp.xyz:28935",
            "capabilities": {"35": {"capacity": 1}},
            "hardware": [{
                "pipeline": "live-video-to-video",
                "model_id": "streamdiffusion-sdxl",
                "gpu_info": {"0": {"id": "GPU-0a1b2c3d-1111-2222-3333-444455556666",
                                    "name": "NVIDIA GeForce RTX 4090", "major": 8, "minor": 9,
                                    "memory_free": 1, "memory_total": 2}}
            }]
        }]
    }));
    events
}

/// Publishes `corpus` through a publisher with `redaction`, into a file, and
/// returns the envelope bytes and the decoded events.
fn publish_corpus(
    corpus: &[Json],
    redaction: RedactionConfig,
) -> (Vec<Vec<u8>>, Vec<Event>, Signer) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.frames");
    let s = signer(Role::Gateway, "FRA");
    let expect = Signer::new(s.key.clone(), s.certificate.clone());
    let settings = PublisherSettings { max_events: 4, redaction, ..PublisherSettings::default() };
    let p = Publisher::with_transport(s, settings, Box::new(FileTransport::create(&path).unwrap()))
        .unwrap();
    for (i, f) in corpus.iter().enumerate() {
        if i % 2 == 0 {
            p.publish(adapter::from_kafka_line(f.to_string().as_bytes()).unwrap()).unwrap();
        } else {
            let family = f["type"].as_str().unwrap();
            p.publish_go_livepeer(family, f["data"].to_string().as_bytes()).unwrap();
        }
    }
    let stats = p.close(Duration::from_secs(10)).unwrap();
    assert_eq!(stats.sent_events as usize, corpus.len());
    let frames = read_frames(&path).unwrap();
    let events = check_envelopes(&frames, &expect, 4);
    (frames, events, expect)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn no_private_value_reaches_a_signed_envelope() {
    let corpus = corpus();
    // Control: with redaction off, every planted value is in the envelopes,
    // so the search below can find them.
    let off = RedactionConfig {
        drop_client_ips: false,
        mask_ip_literals: false,
        drop_params: false,
        drop_access_urls: false,
        drop_logs: false,
        pseudonymize: false,
        ..RedactionConfig::default()
    };
    let (frames, _, _) = publish_corpus(&corpus, off);
    let all: Vec<u8> = frames.concat();
    for secret in SECRETS {
        assert!(contains(&all, secret), "control: {secret} not found without redaction");
    }

    let (frames, events, signer) = publish_corpus(&corpus, RedactionConfig::default());
    assert_eq!(events.len(), corpus.len());
    for (i, frame) in frames.iter().enumerate() {
        let env = Envelope::decode(frame).unwrap();
        let batch = TelemetryBatch::decode(&env.content).unwrap();
        let json: String = batch
            .events
            .iter()
            .map(|e| e.to_kafka_json().to_string())
            .collect::<Vec<_>>()
            .join("\n");
        for secret in SECRETS {
            assert!(!contains(frame, secret), "envelope {i} bytes hold {secret}");
            assert!(!json.contains(secret), "envelope {i} JSON holds {secret}");
        }
        for e in &batch.events {
            assert!(e.get("/clientIP").is_none());
            assert!(e.get("/params").is_none());
            assert!(e.get("/inference_status/last_params").is_none());
        }
    }
    // What is public stays: orchestrator URLs, ids, timings, and the GPU as a pseudonym.
    let all: Vec<u8> = frames.concat();
    assert!(contains(&all, "https://rtav-orch2.xodeapp.xyz:28935"));
    assert!(contains(&all, "5291f1cf"));
    let caps = events.iter().find(|e| e.family.as_str() == "network_capabilities").unwrap();
    let gpu = caps.get_str("/0/hardware/0/gpu_info/0/id").unwrap();
    let key = vouch_sdk::redact::derive_pseudonym_key(&signer.key);
    assert_eq!(gpu, Redactor::new(&RedactionConfig::default(), key).pseudonym(SECRETS[10]));
    let status =
        events.iter().find(|e| e.get_str("/inference_status/last_error").is_some()).unwrap();
    assert_eq!(status.get_str("/inference_status/last_error"), Some("client [ip] went away"));
    assert_eq!(status.get_u64("/inference_status/last_params_update_time"), Some(1768483248931));
}

#[test]
fn every_fixture_survives_adapter_cbor_decode_json_unchanged() {
    for (i, fixture) in fixtures().iter().enumerate() {
        let line = serde_json::to_vec(fixture).unwrap();
        let pretty = serde_json::to_vec_pretty(fixture).unwrap();
        let family = fixture["type"].as_str().unwrap();
        let data = serde_json::to_vec(&fixture["data"]).unwrap();
        let from_line = adapter::from_kafka_line(&line).unwrap();
        assert_eq!(adapter::from_kafka_line(&pretty).unwrap(), from_line, "fixture {i}");
        let from_pair = adapter::from_go_livepeer(family, &data, 42).unwrap();
        for event in [&from_line, &from_pair] {
            let decoded = Event::decode(&event.encode()).unwrap();
            assert_eq!(&decoded, event, "fixture {i}");
            assert_eq!(decoded.data, fixture["data"], "fixture {i} data");
        }
        // The Kafka form comes back member for member, untidy values included.
        let back = Event::decode(&from_line.encode()).unwrap().to_kafka_json();
        // (Equal as JSON values: deterministic CBOR orders object members by key.)
        assert_eq!(back, *fixture, "fixture {i}");
    }

    // And through a whole signed envelope, with redaction off: nothing lost.
    let off = RedactionConfig {
        drop_client_ips: false,
        mask_ip_literals: false,
        drop_params: false,
        drop_access_urls: false,
        drop_logs: false,
        pseudonymize: false,
        ..RedactionConfig::default()
    };
    let fixtures = fixtures();
    let (_, events, _) = publish_corpus(&fixtures, off);
    for (i, (event, fixture)) in events.iter().zip(&fixtures).enumerate() {
        assert_eq!(event.data, fixture["data"], "fixture {i}");
        if i % 2 == 0 {
            assert_eq!(event.to_kafka_json(), *fixture, "fixture {i}");
        }
    }
}

#[test]
fn the_strict_default_keeps_fixtures_useful() {
    // Redaction removes only what it must: the fixtures (which carry no
    // private values but an empty clientIP) keep every other member.
    let r = Redactor::new(&RedactionConfig::default(), [9; 32]);
    for fixture in fixtures() {
        let mut e = adapter::from_kafka_line(fixture.to_string().as_bytes()).unwrap();
        let before = e.clone();
        r.apply(&mut e);
        e.validate().unwrap();
        let mut expected = before.data.clone();
        if let Some(obj) = expected.as_object_mut() {
            obj.remove("clientIP");
            if let Some(hash) =
                obj.get_mut("inference_status").and_then(|s| s.get_mut("last_params_hash"))
            {
                *hash = json!(r.pseudonym(hash.as_str().unwrap()));
            }
            if let Some(status) = obj.get_mut("inference_status").and_then(Json::as_object_mut) {
                status.remove("last_params");
                status.remove("last_restart_logs");
            }
        }
        assert_eq!(e.data, expected, "{}", fixture["type"]);
        assert_eq!(e.kafka_envelope, before.kafka_envelope);
    }
}
