//! `GET /v1/checkpoints`: own and peers' checkpoints of a span of minutes,
//! the agreement over it, and who differs on which minute.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use vouch_delegation::{SignedCheckpoint, SignedDelegation};

use super::book::CheckpointBook;

/// Most minutes one request may span.
pub const MAX_SPAN_MINUTES: u64 = 1_440;

/// One checkpoint as JSON: its fields, its signer, its note, and its wire
/// bytes (base64), which `vouch replay --checkpoints` reads back.
fn checkpoint_json(signed: &SignedCheckpoint, agrees: Option<bool>) -> Value {
    let c = &signed.checkpoint;
    let verifier = SignedDelegation::decode(&signed.certificate).ok().map(|cert| cert.principal);
    let mut v = json!({
        "verifier": verifier,
        "signed": !signed.certificate.is_empty(),
        "minute": c.minute,
        "envelopes": c.envelopes,
        "root": STANDARD.encode(c.root),
        "buckets": STANDARD.encode(c.buckets),
        "policy": format!("0x{}", hex::encode(c.policy)),
        "view": hex::encode(c.view),
        "partitions": hex::encode(c.partitions),
        "log_records": c.log_records,
        "log_head": STANDARD.encode(c.log_head),
        "note": signed.note(),
        "cbor": STANDARD.encode(signed.encode()),
    });
    if let Some(agrees) = agrees {
        v["agrees"] = json!(agrees);
    }
    v
}

/// The answer for minutes `[from, to)` (`to - from` at most [`MAX_SPAN_MINUTES`]).
pub fn checkpoints_json(book: &CheckpointBook, from: u64, to: u64) -> Value {
    let to = to.min(from.saturating_add(MAX_SPAN_MINUTES));
    let minutes: Vec<Value> = (from..to)
        .filter_map(|m| {
            let own = book.own(m);
            let peers: Vec<Value> = book
                .peers(m)
                .map(|(_, p)| {
                    let agrees = own.map(|o| o.checkpoint.agrees_with(&p.checkpoint));
                    checkpoint_json(p, agrees)
                })
                .collect();
            (own.is_some() || !peers.is_empty()).then(|| {
                json!({
                    "minute": m,
                    "own": own.map(|o| checkpoint_json(o, None)),
                    "peers": peers,
                })
            })
        })
        .collect();
    json!({
        "from": from,
        "to": to,
        "agreement": book.agreement(from, to),
        "own_minutes": book.own_minutes(from, to),
        "disagreements": book.disagreements(from, to),
        "minutes": minutes,
    })
}
