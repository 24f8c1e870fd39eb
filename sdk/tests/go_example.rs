//! The Go example end to end: `scripts/go-example.sh` builds the static
//! library and the cgo program in `examples/go-livepeer`, which replays
//! go-livepeer events through the C ABI into a file transport; this test then
//! decodes and verifies every envelope it wrote.
//!
//! Needs Go (Debian's `golang-go`, go1.19+). Without `go` on PATH the test
//! fails and says how to get it: run `scripts/go-example.sh` once as root
//! (it installs `golang-go` with apt-get), or `apt-get install -y golang-go`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;

use serde_json::Value as Json;
use vouch_delegation::Role;
use vouch_delegation::keys::{self, WriteMode};
use vouch_sdk::Signer;
use vouch_testkit::{publisher, repo_root};

/// A client address and a prompt that must never reach an envelope.
const CLIENT_IP: &str = "203.0.113.77";
const PROMPT: &str = "a watercolor portrait of my neighbour";

fn go_available() -> bool {
    Command::new("go").arg("version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn go_program_publishes_verifiable_envelopes_through_the_c_abi() {
    assert!(
        go_available(),
        "`go` is not installed: run scripts/go-example.sh once as root (it installs Debian's \
         golang-go with apt-get), or `apt-get install -y golang-go`"
    );
    let root = repo_root();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();

    let (key, cert) = publisher::identity(Role::Gateway, "FRA");
    keys::write_hex_key(&work.join("delegate.key"), &key, WriteMode::CreateNew).unwrap();
    std::fs::write(work.join("cert.cbor"), cert.encode()).unwrap();
    let out = work.join("envelopes.vouch");
    let config = work.join("publisher.toml");
    std::fs::write(
        &config,
        format!(
            "key_file = {:?}\ncertificate = {:?}\n[batch]\nmax_events = 3\nlinger_ms = 20\n\
             [transport]\nkind = \"file\"\npath = {:?}\n",
            work.join("delegate.key"),
            work.join("cert.cbor"),
            out
        ),
    )
    .unwrap();

    // The real go-livepeer samples, plus two lines carrying private data.
    let fixture =
        std::fs::read_to_string(root.join("examples/go-livepeer/testdata/events.ndjson")).unwrap();
    let mut lines: Vec<String> = fixture.lines().map(str::to_owned).collect();
    lines.push(
        serde_json::json!({"id": "x1", "type": "create_new_payment", "timestamp": "1768483061999",
            "gateway": "", "data": {"clientIP": CLIENT_IP, "request_id": "r9",
            "numTickets": "3", "sender": "0x1111111111111111111111111111111111111111"}})
        .to_string(),
    );
    lines.push(
        serde_json::json!({"id": "x2", "type": "ai_stream_events", "timestamp": "1768483062000",
            "gateway": "", "data": {"type": "params_update", "stream_id": "s9", "request_id": "r9",
            "params": {"prompt": PROMPT, "seed": 7}}})
        .to_string(),
    );
    lines.push("not json at all".to_owned());
    // JSON to Go, but not an event to the SDK: nested deeper than events may
    // be. The SDK's worker finds it and tells the program's error callback.
    let deep = (0..40).fold(serde_json::json!(1), |inner, _| serde_json::json!([inner]));
    lines.push(
        serde_json::json!({"id": "x3", "type": "ai_stream_status", "timestamp": "1768483062001",
            "gateway": "", "data": {"stream_id": "s9", "deep": deep}})
        .to_string(),
    );
    let events_file = work.join("events.ndjson");
    std::fs::write(&events_file, lines.join("\n") + "\n").unwrap();
    let expected_families: Vec<String> = lines[..lines.len() - 2]
        .iter()
        .map(|l| serde_json::from_str::<Json>(l).unwrap()["type"].as_str().unwrap().to_owned())
        .collect();

    let run = Command::new("bash")
        .arg(root.join("scripts/go-example.sh"))
        .arg("--config")
        .arg(&config)
        .arg("--events")
        .arg(&events_file)
        .arg("--work")
        .arg(work)
        .current_dir(&root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "scripts/go-example.sh failed:\n{stderr}");
    assert!(stderr.contains("line 11 is not a go-livepeer event, skipped"), "{stderr}");
    assert!(
        stderr.contains(
            "the SDK dropped an event (code 6): invalid event: JSON value nests deeper than 32"
        ),
        "{stderr}"
    );

    // The program prints the SDK's statistics as its last stdout line.
    let stdout = String::from_utf8(run.stdout).unwrap();
    let stats: Json = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let n = expected_families.len() as u64;
    assert_eq!(stats["published_events"], n + 1, "{stats}");
    assert_eq!(stats["sent_events"], n, "{stats}");
    assert_eq!(stats["queued"], 0);
    assert_eq!(stats["dropped_queue_full"], 0);
    assert_eq!(stats["dropped_invalid"], 1, "the deep one");
    assert_eq!(stats["dropped_transport"], 0);

    let frames = vouch_sdk::transport::file::read_frames(&out).unwrap();
    assert_eq!(stats["sent_envelopes"], frames.len() as u64);
    let signer = Signer::new(key, cert);
    let events = publisher::check_envelopes(&frames, &signer, 3);
    let families: Vec<&str> = events.iter().map(|e| e.family.as_str()).collect();
    assert_eq!(families, expected_families, "every event, once, in order");

    for (i, frame) in frames.iter().enumerate() {
        for secret in [CLIENT_IP, PROMPT] {
            assert!(
                !frame.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "envelope {i} carries private data {secret:?}"
            );
        }
    }
    let payment = events.iter().find(|e| e.request_id.as_deref() == Some("r9")).unwrap();
    assert!(payment.get("/clientIP").is_none());
    assert_eq!(payment.get_str("/numTickets"), Some("3"), "public fields are kept");
}
