//! The adversarial suite for the validation pipeline (issue 4): each case is
//! a test that fails if its guard breaks. Pure library, time injected.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::sync::Arc;

use k256::ecdsa::SigningKey;
use serde_json::json;
use vouch_delegation::authority::{AuthorityView, CachedAuthority, PrincipalEntry};
use vouch_delegation::{DelegationTerms, Eip712Network, Role, SignedDelegation, SignedRevocation};
use vouch_schema::crypto::address_of;
use vouch_schema::topic::telemetry_topic;
use vouch_schema::{Address, Envelope, Event, MessageId, MessageRef, Origin, TelemetryBatch};
use vouch_verifier::validate::{
    Bound, Keep, Outcome, Pipeline, RateLimit, Restored, Unverified, ValidationConfig,
    ValidationError, Verified,
};

const NOW: u64 = 1_800_000_000_000;
const PARTITION: u32 = 3;

fn key(n: u32) -> SigningKey {
    vouch_testkit::keys::numbered(n)
}

fn net() -> Eip712Network {
    Eip712Network::arbitrum_one()
}

struct Actor {
    principal: SigningKey,
    delegate: SigningKey,
    role: Role,
    cert: Vec<u8>,
}

impl Actor {
    fn new(n: u32, role: Role) -> Actor {
        Actor::with_window(n, role, NOW / 1000 - 3600, NOW / 1000 + 86_400)
    }

    fn with_window(n: u32, role: Role, not_before: u64, not_after: u64) -> Actor {
        let principal = key(1000 + n);
        let delegate = key(5000 + n);
        let cert = issue(&principal, &delegate, role, not_before, not_after);
        Actor { principal, delegate, role, cert }
    }

    fn principal_addr(&self) -> Address {
        address_of(self.principal.verifying_key())
    }

    fn delegate_addr(&self) -> Address {
        address_of(self.delegate.verifying_key())
    }

    fn stream(&self) -> String {
        format!("{}/livepeer/telemetry", self.principal_addr())
    }

    fn entry(&self) -> PrincipalEntry {
        PrincipalEntry {
            address: self.principal_addr(),
            roles: BTreeSet::from([self.role.principal_role()]),
            stake: None,
        }
    }

    fn origin(&self) -> Origin {
        if self.role == Role::Loadtest { Origin::Synthetic } else { Origin::Production }
    }

    /// An encoded envelope at (`chain`, `ts`, `seq`) with `prev`.
    fn env(&self, chain: &str, ts: u64, seq: u32, prev: Option<MessageRef>) -> Vec<u8> {
        self.envelope(chain, ts, seq, prev, "a").encode()
    }

    fn envelope(
        &self,
        chain: &str,
        ts: u64,
        seq: u32,
        prev: Option<MessageRef>,
        tag: &str,
    ) -> Envelope {
        let batch = TelemetryBatch::new(self.cert.clone(), vec![event(ts, self.origin(), tag)]);
        let id = MessageId {
            stream_id: self.stream(),
            partition: PARTITION,
            timestamp: ts,
            seq,
            publisher: Address::ZERO,
            msg_chain_id: chain.to_owned(),
        };
        Envelope::sign(id, prev, batch.encode(), &self.delegate).unwrap()
    }
}

fn issue(principal: &SigningKey, delegate: &SigningKey, role: Role, nb: u64, na: u64) -> Vec<u8> {
    let terms = DelegationTerms {
        delegate: address_of(delegate.verifying_key()),
        role,
        region: "eu".to_owned(),
        not_before: nb,
        not_after: na,
        nonce: 1,
    };
    SignedDelegation::issue(principal, net(), terms).unwrap().encode()
}

fn event(ts: u64, origin: Origin, tag: &str) -> Event {
    let mut e = Event::from_type_and_data(
        "ai_stream_events",
        json!({"type": "status", "stream_id": tag, "timestamp": ts}),
        ts,
    )
    .unwrap();
    e.origin = Some(origin);
    e
}

fn msg(bytes: Vec<u8>) -> Unverified {
    Unverified::from_topic(bytes, &telemetry_topic(PARTITION))
}

fn authority(actors: &[&Actor]) -> Arc<CachedAuthority> {
    Arc::new(CachedAuthority::new(AuthorityView::new("test", actors.iter().map(|a| a.entry()))))
}

fn pipeline_with(config: ValidationConfig, actors: &[&Actor]) -> Pipeline {
    Pipeline::new(config, authority(actors))
}

fn pipeline(actors: &[&Actor]) -> Pipeline {
    pipeline_with(ValidationConfig::default(), actors)
}

#[track_caller]
fn expect(p: &mut Pipeline, bytes: Vec<u8>, now: u64, outcome: Outcome, reason: &str) {
    match p.validate(&mut msg(bytes), now) {
        Ok(_) => assert_eq!((Outcome::Accept, "accepted"), (outcome, reason)),
        Err(e) => assert_eq!(e.outcome(), (outcome, reason), "{e}"),
    }
}

#[track_caller]
fn accept(p: &mut Pipeline, bytes: Vec<u8>, now: u64) {
    expect(p, bytes, now, Outcome::Accept, "accepted");
}

#[test]
fn valid_chain_is_accepted_and_gaps_are_recorded() {
    let a = Actor::new(1, Role::Gateway);
    let mut p = pipeline(&[&a]);
    let v = p.validate(&mut msg(a.env("c", NOW, 0, None)), NOW).unwrap();
    assert_eq!(v.gap(), None);
    assert_eq!(v.certificate().principal(), a.principal_addr());
    assert_eq!(v.batch().len(), 1);
    let first = MessageRef { timestamp: NOW, seq: 0 };
    let v = p.validate(&mut msg(a.env("c", NOW + 1, 0, Some(first))), NOW).unwrap();
    assert_eq!(v.gap(), None);
    // Skips NOW+2: the gap is recorded, the envelope still accepted.
    let skipped = MessageRef { timestamp: NOW + 2, seq: 0 };
    let v = p.validate(&mut msg(a.env("c", NOW + 3, 0, Some(skipped))), NOW).unwrap();
    let gap = v.gap().unwrap();
    assert_eq!(gap.last_accepted, Some(MessageRef { timestamp: NOW + 1, seq: 0 }));
    assert_eq!(gap.prev, Some(skipped));
    assert_eq!(p.stats().count(Outcome::Accept, "accepted"), 3);
    assert_eq!(p.stats().gaps(), 1, "the gap is counted where the node exports it");
}

#[test]
fn identical_replay_is_ignored_as_duplicate() {
    let a = Actor::new(1, Role::Gateway);
    let mut p = pipeline(&[&a]);
    let bytes = a.env("c", NOW, 0, None);
    accept(&mut p, bytes.clone(), NOW);
    expect(&mut p, bytes.clone(), NOW, Outcome::Ignore, "duplicate");
    expect(&mut p, bytes, NOW + 5000, Outcome::Ignore, "duplicate");
    assert_eq!(p.stats().count(Outcome::Ignore, "duplicate"), 2);
}

/// After a restart the node re-applies its own log tail with `readmit`:
/// copies of what it accepted before are refused exactly as before, new
/// positions still pass, and envelopes older than the replay window are
/// skipped (the stale check covers them).
#[test]
fn readmitted_history_refuses_replays_after_a_restart() {
    let a = Actor::new(1, Role::Gateway);
    let logged = [a.env("c", NOW, 0, None), a.env("c", NOW + 1, 0, None)];
    let mut before = pipeline(&[&a]);
    for bytes in &logged {
        accept(&mut before, bytes.clone(), NOW);
    }
    let mut restarted = pipeline(&[&a]);
    for bytes in &logged {
        assert!(restarted.readmit(bytes, NOW + 10).unwrap());
    }
    assert_eq!(restarted.stats().count(Outcome::Accept, "accepted"), 0, "readmit counts nothing");
    expect(&mut restarted, logged[0].clone(), NOW + 10, Outcome::Ignore, "duplicate");
    let other = a.envelope("c", NOW + 1, 0, None, "other").encode();
    expect(&mut restarted, other, NOW + 10, Outcome::Ignore, "conflict");
    accept(&mut restarted, a.env("c", NOW + 2, 0, None), NOW + 10);

    let window = ValidationConfig::default().replay_window_ms;
    let mut late = pipeline(&[&a]);
    assert!(!late.readmit(&logged[0], NOW + window + 1).unwrap(), "outside the window");
    assert!(late.readmit(b"not an envelope", NOW).is_err());
}

/// Same (publisher, chain, timestamp, seq), different content, validly
/// signed: Ignore "conflict". The position is the identity, so the first
/// accepted envelope stays and the second never reaches state; it is not a
/// Reject because the forwarding peer cannot know which version reached us
/// first (the equivocation is the publisher's, and is counted apart).
#[test]
fn same_position_with_new_content_is_ignored_as_conflict() {
    let a = Actor::new(1, Role::Gateway);
    let mut p = pipeline(&[&a]);
    accept(&mut p, a.envelope("c", NOW, 0, None, "one").encode(), NOW);
    let other = a.envelope("c", NOW, 0, None, "two").encode();
    expect(&mut p, other, NOW, Outcome::Ignore, "conflict");
    // Another chain of the same publisher is independent.
    accept(&mut p, a.envelope("d", NOW, 0, None, "two").encode(), NOW);
}

#[test]
fn future_dated_and_stale_are_ignored() {
    let a = Actor::new(1, Role::Gateway);
    let mut p = pipeline(&[&a]);
    let cfg = p.config().clone();
    expect(
        &mut p,
        a.env("c", NOW + cfg.max_future_skew_ms + 1, 0, None),
        NOW,
        Outcome::Ignore,
        "future",
    );
    expect(
        &mut p,
        a.env("c", NOW - cfg.replay_window_ms - 1, 0, None),
        NOW,
        Outcome::Ignore,
        "stale",
    );
    // At the edges, accepted.
    accept(&mut p, a.env("c", NOW - cfg.replay_window_ms, 0, None), NOW);
    accept(&mut p, a.env("c", NOW + cfg.max_future_skew_ms, 0, None), NOW);
}

/// `a`'s envelope at `ts` on chain `c`, signed by someone else.
fn forged(a: &Actor, ts: u64) -> Vec<u8> {
    let mut env = a.envelope("c", ts, 0, None, "x");
    env.signature = vouch_schema::Signature::sign_prehash(&key(9999), &env.signing_hash());
    env.encode()
}

#[test]
fn forged_signature_is_rejected_cached_key_or_not() {
    let a = Actor::new(1, Role::Gateway);
    let forge = |ts: u64| forged(&a, ts);
    let mut p = pipeline(&[&a]);
    // Key not cached yet: recovery yields the attacker, not the publisher.
    expect(&mut p, forge(NOW), NOW, Outcome::Reject, "bad_signature");
    // The forgery recorded nothing: the genuine envelope at that position passes.
    accept(&mut p, a.env("c", NOW, 0, None), NOW);
    // Key cached now: verification against it fails.
    expect(&mut p, forge(NOW + 1), NOW, Outcome::Reject, "bad_signature");
}

#[test]
fn tampered_content_is_rejected() {
    let a = Actor::new(1, Role::Gateway);
    let mut p = pipeline(&[&a]);
    let mut env = a.envelope("c", NOW, 0, None, "honest");
    let forged = TelemetryBatch::new(a.cert.clone(), vec![event(NOW, Origin::Production, "lie")]);
    env.content = forged.encode();
    expect(&mut p, env.encode(), NOW, Outcome::Reject, "bad_signature");
    // Tampering with a signed header field too.
    let mut env = a.envelope("c", NOW, 1, None, "honest");
    env.id.seq = 2;
    expect(&mut p, env.encode(), NOW, Outcome::Reject, "bad_signature");
}

/// A message decoded and hashed ahead (on another thread, in a node) is
/// judged exactly as the same message without it: genuine ones are
/// accepted, forged, tampered and misplaced ones refused for the same reason.
#[test]
fn a_prehashed_message_is_judged_as_without_it() {
    let a = Actor::new(1, Role::Gateway);
    let forged = |ts: u64| forged(&a, ts);
    let tampered = {
        let mut env = a.envelope("c", NOW + 3, 0, None, "honest");
        env.id.seq = 1;
        env.encode()
    };
    let mut oversized = a.env("c", NOW + 4, 0, None);
    oversized.resize(vouch_schema::limits::MAX_ENVELOPE_BYTES + 1, 0);
    let messages = [
        forged(NOW),
        a.env("c", NOW, 0, None),
        forged(NOW + 1),
        a.env("c", NOW + 1, 0, Some(MessageRef { timestamp: NOW, seq: 0 })),
        a.env("c", NOW + 1, 0, Some(MessageRef { timestamp: NOW, seq: 0 })),
        tampered,
        b"not an envelope".to_vec(),
        oversized,
        a.env("c", NOW + 5, 0, None),
    ];
    // Hashed as a node hashes a group: all at once, several per SIMD lane set.
    let mut sent: Vec<Unverified> = messages.into_iter().map(msg).collect();
    // A genuine envelope on another partition's topic.
    let astray = a.env("c", NOW + 6, 0, None);
    sent.push(Unverified::from_topic(astray, &telemetry_topic(PARTITION + 1)));
    // With the decoded envelopes kept (validated at once) and without (a
    // group waiting for its turn).
    for keep in [Keep::Envelopes, Keep::Digests] {
        let (mut plain, mut prehashed) = (pipeline(&[&a]), pipeline(&[&a]));
        let mut ahead = sent.clone();
        Unverified::prehash_all(&mut ahead, keep);
        // Prepared: every message that decodes as an envelope, and only those.
        let prepared: Vec<bool> = ahead.iter().map(|m| m.signing_hash().is_some()).collect();
        assert_eq!(prepared, [true, true, true, true, true, true, false, false, true, true]);
        for (mut as_sent, mut ahead) in sent.clone().into_iter().zip(ahead) {
            let judged = |r: Result<Verified, ValidationError>| {
                r.map(|v| (v.id().clone(), v.batch().clone())).map_err(|e| e.outcome())
            };
            let (plain, prehashed) =
                (plain.validate(&mut as_sent, NOW), prehashed.validate(&mut ahead, NOW));
            // Validation took what was prepared rather than hash again.
            assert_eq!(ahead.signing_hash(), None);
            assert_eq!(judged(prehashed), judged(plain), "{keep:?}");
        }
        assert_eq!(plain.snapshot(), prehashed.snapshot());
        assert_eq!(plain.stats().count(Outcome::Accept, "accepted"), 3);
        assert_eq!(plain.stats().count(Outcome::Reject, "bad_signature"), 3);
        assert_eq!(plain.stats().count(Outcome::Reject, "bad_structure"), 1);
    }
}

#[test]
fn principal_outside_the_active_set_is_unauthorized() {
    let member = Actor::new(1, Role::Gateway);
    let outsider = Actor::new(2, Role::Gateway);
    let auth = authority(&[&member]);
    let mut p = Pipeline::new(ValidationConfig::default(), auth.clone());
    expect(&mut p, outsider.env("c", NOW, 0, None), NOW, Outcome::Reject, "unauthorized");
    accept(&mut p, member.env("c", NOW, 0, None), NOW);
    // An orchestrator principal cannot publish gateway observations.
    let orch = Actor::new(3, Role::Orchestrator);
    let as_gateway = Actor {
        cert: issue(
            &orch.principal,
            &orch.delegate,
            Role::Gateway,
            NOW / 1000 - 10,
            NOW / 1000 + 10,
        ),
        ..Actor::new(3, Role::Gateway)
    };
    auth.replace(AuthorityView::new("test", [member.entry(), orch.entry()]));
    expect(&mut p, as_gateway.env("c", NOW, 0, None), NOW, Outcome::Reject, "unauthorized");
    // Deactivated after a refresh: its new envelopes stop.
    auth.replace(AuthorityView::new("test", [orch.entry()]));
    expect(&mut p, member.env("c", NOW + 1, 0, None), NOW, Outcome::Reject, "unauthorized");
}

#[test]
fn expired_certificate_is_rejected() {
    let a = Actor::with_window(1, Role::Gateway, NOW / 1000 - 3600, NOW / 1000 - 60);
    let mut p = pipeline(&[&a]);
    expect(&mut p, a.env("c", NOW, 0, None), NOW, Outcome::Reject, "expired_certificate");
    // Valid at the envelope's own time (within the replay window), and
    // arriving within the clock skew after notAfter: accepted.
    accept(&mut p, a.env("c", NOW - 120_000, 0, None), NOW);
    // Cached now, and still expired for later stamps.
    expect(&mut p, a.env("c", NOW - 1000, 0, None), NOW, Outcome::Reject, "expired_certificate");
}

/// Issue 18, item 6: an expired certificate kept working for envelopes
/// back-dated inside the replay window. Arriving more than the clock skew
/// after `notAfter`, an envelope is refused whatever its stamp; the cached
/// certificate is no way around it.
#[test]
fn expired_certificate_is_refused_at_arrival_whatever_the_stamp() {
    let skew = ValidationConfig::default().certificate_clock_skew_secs;
    let not_after = NOW / 1000 - skew - 100;
    let a = Actor::with_window(1, Role::Gateway, NOW / 1000 - 3600, not_after);
    let backdated = (not_after - 10) * 1000;
    assert!(NOW - backdated < ValidationConfig::default().replay_window_ms, "inside the window");
    let mut p = pipeline(&[&a]);
    // In time, it was accepted (and its certificate cached)...
    accept(&mut p, a.env("c", backdated - 1000, 0, None), not_after * 1000);
    accept(&mut p, a.env("c", backdated - 500, 0, None), (not_after + skew) * 1000);
    // ...now the same certificate is refused for an envelope stamped before notAfter.
    expect(&mut p, a.env("c", backdated, 0, None), NOW, Outcome::Reject, "expired_certificate");
    let mut fresh = pipeline(&[&a]);
    expect(&mut fresh, a.env("c", backdated, 0, None), NOW, Outcome::Reject, "expired_certificate");
}

#[test]
fn revoked_delegate_history_stays_new_arrivals_rejected() {
    let a = Actor::new(1, Role::Gateway);
    let revoked_at = NOW / 1000 + 10;
    let revocation =
        SignedRevocation::issue(&a.principal, net(), a.delegate_addr(), revoked_at).encode();
    let run = || {
        let mut p = pipeline(&[&a]);
        let mut results = Vec::new();
        // Before the revocation is known: accepted (history).
        results.push(p.validate(&mut msg(a.env("c", NOW, 0, None)), NOW).is_ok());
        p.validate_revocation(&revocation, NOW).unwrap();
        // revokedAt still ahead: envelopes stamped before it pass, at or after it fail.
        results.push(p.validate(&mut msg(a.env("c", NOW + 1000, 0, None)), NOW).is_ok());
        let after = a.env("c", revoked_at * 1000 + 5, 0, None);
        results.push(p.validate(&mut msg(after), revoked_at * 1000 - 20_000).is_ok());
        // Once revokedAt has passed, every new arrival fails, even backdated ones.
        let backdated = a.env("c", NOW + 2000, 0, None);
        let err = p.validate(&mut msg(backdated), revoked_at * 1000 + 1).unwrap_err();
        assert_eq!(err.outcome(), (Outcome::Reject, "revoked"));
        results.push(false);
        (results, p.snapshot())
    };
    let (results, snapshot) = run();
    assert_eq!(results, vec![true, true, false, false]);
    assert!(snapshot.contains(&(Outcome::Reject, "revoked", 2)));
    // Deterministic: the same calls give the same state and counts.
    assert_eq!(run(), (results, snapshot));
    // Revocations by another principal do not touch this delegate.
    let other = Actor::new(2, Role::Gateway);
    let foreign = SignedRevocation::issue(&other.principal, net(), a.delegate_addr(), 0).encode();
    let mut p = pipeline(&[&a, &other]);
    p.validate_revocation(&foreign, NOW).unwrap();
    accept(&mut p, a.env("c", NOW, 0, None), NOW);
}

/// Roles: a delegate's role is its certificate's. Telemetry topics take the
/// configured publisher roles (not `verifier`, whose messages belong on the
/// control topic), and a `loadtest` certificate may publish only synthetic
/// events (load tests get their own track, never production scores).
#[test]
fn wrong_role_is_rejected() {
    let verifier = Actor::new(1, Role::Verifier);
    let loadtest = Actor::new(2, Role::Loadtest);
    let mut p = pipeline(&[&verifier, &loadtest]);
    expect(&mut p, verifier.env("c", NOW, 0, None), NOW, Outcome::Reject, "wrong_role");
    accept(&mut p, loadtest.env("c", NOW, 0, None), NOW);
    let batch =
        TelemetryBatch::new(loadtest.cert.clone(), vec![event(NOW, Origin::Production, "p")]);
    let id = MessageId {
        stream_id: loadtest.stream(),
        partition: PARTITION,
        timestamp: NOW + 1,
        seq: 0,
        publisher: Address::ZERO,
        msg_chain_id: "c".into(),
    };
    let env = Envelope::sign(id, None, batch.encode(), &loadtest.delegate).unwrap();
    expect(&mut p, env.encode(), NOW, Outcome::Reject, "wrong_role");
}

#[test]
fn wrong_stream_and_borrowed_certificate_are_rejected() {
    let a = Actor::new(1, Role::Gateway);
    let b = Actor::new(2, Role::Gateway);
    let mut p = pipeline(&[&a, &b]);
    // a's delegate publishing into b's stream.
    let mut env = a.envelope("c", NOW, 0, None, "x");
    env.id.stream_id = b.stream();
    let env = Envelope::sign(env.id, None, env.content, &a.delegate).unwrap();
    expect(&mut p, env.encode(), NOW, Outcome::Reject, "wrong_stream");
    // b's delegate attaching a's certificate.
    let thief = Actor { delegate: key(5002), ..Actor::new(1, Role::Gateway) };
    let stolen = Envelope::sign(
        MessageId {
            stream_id: a.stream(),
            partition: PARTITION,
            timestamp: NOW,
            seq: 0,
            publisher: Address::ZERO,
            msg_chain_id: "c".into(),
        },
        None,
        TelemetryBatch::new(a.cert.clone(), vec![event(NOW, Origin::Production, "x")]).encode(),
        &thief.delegate,
    )
    .unwrap();
    expect(&mut p, stolen.encode(), NOW, Outcome::Reject, "bad_certificate");
    // A certificate signed by someone else than its principal.
    let mut bad = SignedDelegation::decode(&a.cert).unwrap();
    bad.principal = b.principal_addr();
    let forged = Actor { cert: bad.encode(), ..Actor::new(1, Role::Gateway) };
    expect(&mut p, forged.env("c", NOW, 0, None), NOW, Outcome::Reject, "bad_certificate");
}

#[test]
fn oversized_malformed_and_misrouted_are_rejected() {
    let a = Actor::new(1, Role::Gateway);
    let mut p = pipeline(&[&a]);
    let oversized = vec![0u8; vouch_schema::limits::MAX_ENVELOPE_BYTES + 1];
    expect(&mut p, oversized, NOW, Outcome::Reject, "oversize");
    expect(&mut p, vec![0xff, 0x00, 0x13], NOW, Outcome::Reject, "malformed");
    let good = a.env("c", NOW, 0, None);
    expect(&mut p, good[..good.len() - 3].to_vec(), NOW, Outcome::Reject, "malformed");
    // Envelope whose content is not a batch.
    let id = MessageId {
        stream_id: a.stream(),
        partition: PARTITION,
        timestamp: NOW,
        seq: 0,
        publisher: Address::ZERO,
        msg_chain_id: "c".into(),
    };
    let junk = Envelope::sign(id, None, vec![0xa0], &a.delegate).unwrap();
    expect(&mut p, junk.encode(), NOW, Outcome::Reject, "malformed");
    // Right envelope, wrong topic.
    let mut wrong = Unverified::from_topic(good.clone(), &telemetry_topic(PARTITION + 1));
    assert_eq!(
        p.validate(&mut wrong, NOW).unwrap_err().outcome(),
        (Outcome::Reject, "bad_structure")
    );
    let mut control = Unverified::from_topic(good.clone(), vouch_schema::topic::CONTROL_TOPIC);
    assert_eq!(
        p.validate(&mut control, NOW).unwrap_err().outcome(),
        (Outcome::Reject, "bad_structure")
    );
    accept(&mut p, good, NOW);
}

#[test]
fn out_of_order_within_the_reorder_window_and_bounded_dedup() {
    let a = Actor::new(1, Role::Gateway);
    let config = ValidationConfig { dedup_per_chain: 4, ..ValidationConfig::default() };
    let reorder = config.reorder_window_ms;
    let mut p = pipeline_with(config, &[&a]);
    accept(&mut p, a.env("c", NOW, 0, None), NOW);
    accept(&mut p, a.env("c", NOW - 1000, 0, None), NOW);
    expect(&mut p, a.env("c", NOW - reorder - 1, 0, None), NOW, Outcome::Ignore, "out_of_order");
    // Fill past the per-chain bound; a replay of an evicted position is still refused.
    for seq in 1..10 {
        accept(&mut p, a.env("c", NOW, seq, None), NOW);
    }
    assert!(p.guard_sizes().max_chain_positions <= 4);
    assert!(p.stats().evictions(Bound::ChainPositions) > 0);
    expect(&mut p, a.env("c", NOW, 1, None), NOW, Outcome::Ignore, "out_of_order");
    expect(&mut p, a.env("c", NOW - 1000, 0, None), NOW, Outcome::Ignore, "out_of_order");
}

/// Filling the chain map cannot reopen a replay: a publisher may hold only
/// `max_chains_per_publisher` chains (idle ones are reclaimed), and an
/// envelope of an unknown chain stamped at or before the newest timestamp of
/// a chain evicted inside the replay window is refused.
#[test]
fn chain_churn_neither_grows_state_nor_reopens_replays() {
    let a = Actor::new(1, Role::Gateway);
    let b = Actor::new(2, Role::Gateway);
    let config = ValidationConfig {
        max_chains: 4,
        max_chains_per_publisher: 3,
        ..ValidationConfig::default()
    };
    let window = config.replay_window_ms;
    let mut p = pipeline_with(config, &[&a, &b]);
    let victim = b.env("v", NOW, 0, None);
    accept(&mut p, victim.clone(), NOW);
    for i in 0..3 {
        accept(&mut p, a.env(&format!("c{i}"), NOW + 1 + i, 0, None), NOW + 10);
    }
    expect(&mut p, a.env("c3", NOW + 5, 0, None), NOW + 10, Outcome::Ignore, "too_many_chains");
    // Old chains go idle after the replay window and are reclaimed.
    let later = NOW + window + 100;
    accept(&mut p, a.env("c3", later, 0, None), later);
    // b's chain was evicted by the map bound inside the window; replaying it
    // is refused rather than accepted twice.
    let mut q =
        pipeline_with(ValidationConfig { max_chains: 2, ..ValidationConfig::default() }, &[&a, &b]);
    accept(&mut q, victim.clone(), NOW);
    accept(&mut q, a.env("x", NOW + 1, 0, None), NOW + 10);
    accept(&mut q, a.env("y", NOW + 2, 0, None), NOW + 10);
    assert_eq!(q.stats().evictions(Bound::Chains), 1);
    expect(&mut q, victim, NOW + 20, Outcome::Ignore, "out_of_order");
    assert!(q.guard_sizes().chains <= 2);
}

#[test]
fn too_many_live_delegates_are_ignored() {
    let principal = key(1001);
    let config = ValidationConfig { max_delegates_per_principal: 2, ..ValidationConfig::default() };
    let delegates: Vec<Actor> = (0..3)
        .map(|i| {
            let delegate = key(7000 + i);
            let cert =
                issue(&principal, &delegate, Role::Gateway, NOW / 1000 - 10, NOW / 1000 + 100);
            Actor { principal: principal.clone(), delegate, role: Role::Gateway, cert }
        })
        .collect();
    let mut p = pipeline_with(config, &[&delegates[0]]);
    accept(&mut p, delegates[0].env("c", NOW, 0, None), NOW);
    accept(&mut p, delegates[1].env("c", NOW, 0, None), NOW);
    expect(&mut p, delegates[2].env("c", NOW, 0, None), NOW, Outcome::Ignore, "too_many_delegates");
    // Known delegates go on.
    accept(&mut p, delegates[1].env("c", NOW + 1, 0, None), NOW);
    // Once the first two expire, a new one is admitted.
    let later = NOW + 200_000;
    let fresh = {
        let delegate = key(7100);
        let cert =
            issue(&principal, &delegate, Role::Gateway, later / 1000 - 10, later / 1000 + 100);
        Actor { principal: principal.clone(), delegate, role: Role::Gateway, cert }
    };
    accept(&mut p, fresh.env("c", later, 0, None), later);
    assert!(p.guard_sizes().max_delegates <= 2);
}

/// One principal floods at 50× its rate while 20 honest publishers continue:
/// honest acceptance stays ≥ 99% and every guard stays within its bound.
#[test]
fn flood_at_50x_leaves_honest_publishers_through_and_maps_bounded() {
    let rate = 10;
    let mut config = ValidationConfig {
        max_chains: 30,
        dedup_per_chain: 64,
        certificate_cache: 32,
        delegate_key_cache: 32,
        max_buckets: 32,
        max_principals: 32,
        ..ValidationConfig::default()
    };
    config.rate_limits.gateway = RateLimit { rate_per_sec: rate, burst: 2 * rate };
    let honest: Vec<Actor> = (0..20).map(|i| Actor::new(100 + i, Role::Gateway)).collect();
    let flooder = Actor::new(1, Role::Gateway);
    let mut actors: Vec<&Actor> = honest.iter().collect();
    actors.push(&flooder);
    let mut p = pipeline_with(config.clone(), &actors);

    let seconds = 10u64;
    let honest_per_sec = 5u64; // half the rate
    let flood_per_sec = 50 * u64::from(rate);
    let (mut honest_sent, mut honest_ok, mut flood_ok) = (0u64, 0u64, 0u64);
    let mut flood_seq = 0u32;
    for s in 0..seconds {
        for tick in 0..flood_per_sec {
            let now = NOW + s * 1000 + tick * 1000 / flood_per_sec;
            // Each flood envelope on a fresh chain, to pressure the chain map too.
            flood_seq += 1;
            let chain = format!("f{flood_seq}");
            if p.validate(&mut msg(flooder.env(&chain, now, 0, None)), now).is_ok() {
                flood_ok += 1;
            }
            if tick % (flood_per_sec / honest_per_sec) == 0 {
                for (i, h) in honest.iter().enumerate() {
                    honest_sent += 1;
                    let bytes = h.env(&format!("h{i}"), now, 0, None);
                    if p.validate(&mut msg(bytes), now).is_ok() {
                        honest_ok += 1;
                    }
                }
            }
        }
    }
    eprintln!("honest {honest_ok}/{honest_sent}, flood {flood_ok}, {:?}", p.snapshot());
    assert!(honest_ok * 100 >= honest_sent * 99, "honest {honest_ok}/{honest_sent}");
    // The flooder got at most its burst plus its rate.
    assert!(flood_ok <= u64::from(2 * rate) + seconds * u64::from(rate) + 1, "flood {flood_ok}");
    let sizes = p.guard_sizes();
    assert!(sizes.chains <= config.max_chains, "{sizes:?}");
    assert!(sizes.max_publisher_chains <= config.max_chains_per_publisher);
    assert!(sizes.max_chain_positions <= config.dedup_per_chain);
    assert!(sizes.certificates <= config.certificate_cache);
    assert!(sizes.delegate_keys <= config.delegate_key_cache);
    assert!(sizes.buckets <= config.max_buckets);
    assert!(sizes.principals <= config.max_principals);
    let shed = p.stats().count(Outcome::Ignore, "rate_limited")
        + p.stats().count(Outcome::Ignore, "too_many_chains");
    assert!(shed >= 50 * u64::from(rate) * seconds - flood_ok, "{:?}", p.snapshot());
    assert!(p.stats().count(Outcome::Ignore, "too_many_chains") > 0);
    assert!(p.stats().evictions(Bound::Chains) > 0);
}

#[test]
fn forged_messages_do_not_drain_an_honest_bucket() {
    let a = Actor::new(1, Role::Gateway);
    let mut config = ValidationConfig::default();
    config.rate_limits.gateway = RateLimit { rate_per_sec: 1, burst: 2 };
    let mut p = pipeline_with(config, &[&a]);
    let attacker = key(9999);
    for i in 0..50 {
        let mut env = a.envelope("c", NOW, i, None, "x");
        env.signature = vouch_schema::Signature::sign_prehash(&attacker, &env.signing_hash());
        expect(&mut p, env.encode(), NOW, Outcome::Reject, "bad_signature");
    }
    accept(&mut p, a.env("c", NOW, 100, None), NOW);
    accept(&mut p, a.env("c", NOW, 101, None), NOW);
    expect(&mut p, a.env("c", NOW, 102, None), NOW, Outcome::Ignore, "rate_limited");
    // Refilled a second later.
    accept(&mut p, a.env("c", NOW + 1000, 0, None), NOW + 1000);
}

#[test]
fn outcome_table_and_snapshot() {
    use vouch_schema::{BatchError, EnvelopeError, SignatureError};
    let cases = [
        (ValidationError::Oversize(1), Outcome::Reject, "oversize"),
        (ValidationError::Envelope(EnvelopeError::MsgChainId), Outcome::Reject, "malformed"),
        (ValidationError::Envelope(EnvelopeError::Version(2)), Outcome::Reject, "bad_structure"),
        (ValidationError::Batch(BatchError::Missing("events")), Outcome::Reject, "malformed"),
        (ValidationError::Future { ahead_ms: 1 }, Outcome::Ignore, "future"),
        (ValidationError::Stale { age_ms: 1 }, Outcome::Ignore, "stale"),
        (ValidationError::Duplicate, Outcome::Ignore, "duplicate"),
        (ValidationError::Conflict, Outcome::Ignore, "conflict"),
        (ValidationError::OutOfOrder, Outcome::Ignore, "out_of_order"),
        (
            ValidationError::Revoked { delegate: Address::ZERO, revoked_at_ms: 1, timestamp_ms: 2 },
            Outcome::Reject,
            "revoked",
        ),
        (
            ValidationError::Unauthorized { principal: Address::ZERO, role: Role::Gateway },
            Outcome::Reject,
            "unauthorized",
        ),
        (ValidationError::RateLimited, Outcome::Ignore, "rate_limited"),
        (ValidationError::TooManyDelegates, Outcome::Ignore, "too_many_delegates"),
        (ValidationError::TooManyChains, Outcome::Ignore, "too_many_chains"),
        (
            ValidationError::BadSignature(SignatureError::WrongSigner {
                expected: Address::ZERO,
                actual: Address::ZERO,
            }),
            Outcome::Reject,
            "bad_signature",
        ),
        (
            ValidationError::MalformedRevocation(vouch_delegation::DecodeError::NotAMap),
            Outcome::Reject,
            "malformed",
        ),
        (ValidationError::NotAPrincipal(Address::ZERO), Outcome::Reject, "unauthorized"),
        (ValidationError::RevocationInForce, Outcome::Ignore, "duplicate"),
    ];
    for (e, o, r) in cases {
        assert_eq!(e.outcome(), (o, r), "{e}");
    }
    let a = Actor::new(1, Role::Gateway);
    let mut p = pipeline(&[&a]);
    let bytes = a.env("c", NOW, 0, None);
    accept(&mut p, bytes.clone(), NOW);
    expect(&mut p, bytes, NOW, Outcome::Ignore, "duplicate");
    assert_eq!(
        p.snapshot(),
        vec![(Outcome::Accept, "accepted", 1), (Outcome::Ignore, "duplicate", 1)]
    );
}

#[test]
fn config_deserializes_with_defaults() {
    let empty: ValidationConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, ValidationConfig::default());
    let some: ValidationConfig =
        serde_json::from_str(r#"{"replay_window_ms": 5000, "rate_limits": {"gateway": {"rate_per_sec": 1, "burst": 1}}}"#)
            .unwrap();
    assert_eq!(some.replay_window_ms, 5000);
    assert_eq!(some.rate_limits.gateway, RateLimit { rate_per_sec: 1, burst: 1 });
    assert_eq!(some.rate_limits.runner, ValidationConfig::default().rate_limits.runner);
    let json = serde_json::to_string(&ValidationConfig::default()).unwrap();
    assert_eq!(
        serde_json::from_str::<ValidationConfig>(&json).unwrap(),
        ValidationConfig::default()
    );
}

/// Issue 18, item 2: anyone could disable revocation by filling the table
/// with revocations signed by throw-away keys. Only principals of the view
/// may revoke now; the flood is refused `unauthorized`, stores nothing, and a
/// real principal's revocation still takes effect.
#[test]
fn throwaway_keys_cannot_revoke_or_crowd_out_a_principal() {
    let a = Actor::new(1, Role::Gateway);
    let mut p = pipeline(&[&a]);
    accept(&mut p, a.env("c", NOW, 0, None), NOW);
    for k in 0..500u32 {
        let junk = key(20_000 + k);
        for d in 0..4u32 {
            let delegate = address_of(key(40_000 + 4 * k + d).verifying_key());
            let r = SignedRevocation::issue(&junk, net(), delegate, NOW / 1000).encode();
            let e = p.validate_revocation(&r, NOW).unwrap_err();
            assert_eq!(e.outcome(), (Outcome::Reject, "unauthorized"), "{e}");
        }
    }
    // Even a throw-away key revoking the real delegate changes nothing.
    let hijack = SignedRevocation::issue(&key(9999), net(), a.delegate_addr(), 0).encode();
    assert!(matches!(p.validate_revocation(&hijack, NOW), Err(ValidationError::NotAPrincipal(_))));
    assert_eq!(p.guard_sizes().revocations, 0);
    accept(&mut p, a.env("c", NOW + 1, 0, None), NOW + 1);
    let real = SignedRevocation::issue(&a.principal, net(), a.delegate_addr(), NOW / 1000).encode();
    p.validate_revocation(&real, NOW + 2).unwrap();
    expect(&mut p, a.env("c", NOW + 3, 0, None), NOW + 3, Outcome::Reject, "revoked");
    // The same revocation again changes nothing: ignored as a duplicate.
    let again = p.validate_revocation(&real, NOW + 4).unwrap_err();
    assert_eq!(again.outcome(), (Outcome::Ignore, "duplicate"));
    // Malformed, oversized and wrong-network revocations.
    let other_net = Eip712Network { chain_id: 1337, verifying_contract: Address::ZERO };
    for (bytes, reason) in [
        (vec![0xa1, 0x00], "malformed"),
        (real[..real.len() - 1].to_vec(), "malformed"),
        (vec![0; 4096], "oversize"),
        (
            SignedRevocation::issue(&a.principal, other_net, a.delegate_addr(), 0).encode(),
            "bad_signature",
        ),
    ] {
        assert_eq!(p.validate_revocation(&bytes, NOW).unwrap_err().outcome().1, reason);
    }
    // Control-topic outcomes are not telemetry outcomes.
    assert_eq!(p.stats().count(Outcome::Reject, "unauthorized"), 0);
}

/// A principal's revocations of delegates this verifier never saw are
/// bounded; past the bound it loses its own oldest such revocation, never a
/// revocation of a delegate it saw and never another principal's.
#[test]
fn unknown_delegate_revocations_are_bounded_per_principal_and_never_evict_the_real() {
    let config = ValidationConfig {
        max_unknown_revocations_per_principal: 8,
        ..ValidationConfig::default()
    };
    let a = Actor::new(1, Role::Gateway);
    let b = Actor::new(2, Role::Gateway);
    let mut p = pipeline_with(config, &[&a, &b]);
    // b revokes one unknown delegate; a's delegate is seen, then revoked.
    let b_unknown = address_of(key(60_000).verifying_key());
    p.validate_revocation(
        &SignedRevocation::issue(&b.principal, net(), b_unknown, 0).encode(),
        NOW,
    )
    .unwrap();
    accept(&mut p, a.env("c", NOW, 0, None), NOW);
    let later = NOW / 1000 + 3600;
    let stolen = SignedRevocation::issue(&a.principal, net(), a.delegate_addr(), later).encode();
    p.validate_revocation(&stolen, NOW).unwrap();
    // a floods its own table with revocations of delegates nobody saw.
    for d in 0..200u32 {
        let delegate = address_of(key(61_000 + d).verifying_key());
        let r = SignedRevocation::issue(&a.principal, net(), delegate, 0).encode();
        p.validate_revocation(&r, NOW + u64::from(d)).unwrap();
    }
    let sizes = p.guard_sizes();
    assert_eq!(sizes.max_principal_revocations, 8 + 1, "the bound plus the protected one");
    assert_eq!(sizes.revocations, 8 + 1 + 1);
    assert_eq!(p.stats().evictions(Bound::Revocations), 200 - 8);
    // The stolen delegate's revocation is still in force, and so is b's.
    let after = (later + 1) * 1000;
    expect(&mut p, a.env("c", after, 0, None), after, Outcome::Reject, "revoked");
    let dup = SignedRevocation::issue(&b.principal, net(), b_unknown, 0).encode();
    assert_eq!(p.validate_revocation(&dup, NOW).unwrap_err().outcome().1, "duplicate");
}

/// Restoring at start: revocations read from the state need a principal of
/// the current view as their signer; those from the log are re-applied as
/// recorded; the bound is enforced once all are back, keeping what the
/// re-read log tail showed to be real.
#[test]
fn restored_revocations_follow_the_same_rules() {
    let config = ValidationConfig {
        max_unknown_revocations_per_principal: 2,
        ..ValidationConfig::default()
    };
    let a = Actor::new(1, Role::Gateway);
    let mut p = pipeline_with(config, &[&a]);
    let junk = SignedRevocation::issue(&key(9999), net(), a.delegate_addr(), 0).encode();
    let e = p.restore_revocation(&junk, Restored::State, NOW).unwrap_err();
    assert_eq!(e.outcome(), (Outcome::Reject, "unauthorized"));
    p.restore_revocation(&junk, Restored::Log, NOW).unwrap();
    // Five unknown revocations of a's (oldest revokedAt first), and a's own delegate.
    for d in 0..5u64 {
        let delegate = address_of(key(70_000 + d as u32).verifying_key());
        let r = SignedRevocation::issue(&a.principal, net(), delegate, 10 + d).encode();
        p.restore_revocation(&r, Restored::State, NOW).unwrap();
    }
    let own = SignedRevocation::issue(&a.principal, net(), a.delegate_addr(), 1).encode();
    p.restore_revocation(&own, Restored::State, NOW).unwrap();
    assert_eq!(p.guard_sizes().max_principal_revocations, 6, "no eviction while restoring");
    // The log tail shows a's delegate at work: its revocation is real.
    assert!(p.readmit(&a.env("c", NOW - 1000, 0, None), NOW).unwrap());
    p.finish_restore(NOW);
    assert_eq!(p.guard_sizes().max_principal_revocations, 3, "a's own plus its 2 newest");
    assert_eq!(p.stats().evictions(Bound::Revocations), 3);
    expect(&mut p, a.env("c", NOW, 0, None), NOW, Outcome::Reject, "revoked");
}

/// The pieces a malformed message can hide in, from the outside in.
#[derive(Debug, Clone, Copy)]
enum Depth {
    Envelope,
    Content,
    BatchMap,
    Certificate,
    EventList,
    EventMap,
    Nested,
}

const DEPTHS: [Depth; 7] = [
    Depth::Envelope,
    Depth::Content,
    Depth::BatchMap,
    Depth::Certificate,
    Depth::EventList,
    Depth::EventMap,
    Depth::Nested,
];

/// A CBOR value of a kind no field of a batch or event accepts in place of
/// `original` (never the same kind).
fn wrong_kind(original: &ciborium::Value, pick: usize) -> ciborium::Value {
    use ciborium::Value as V;
    let kinds = [
        V::Bool(true),
        V::Null,
        V::Bytes(vec![1, 2, 3]),
        V::Tag(42, Box::new(V::Integer(1.into()))),
        V::Array(vec![V::Null]),
        V::Float(0.5),
    ];
    let kind = |v: &V| std::mem::discriminant(v);
    let candidates: Vec<&V> = kinds.iter().filter(|k| kind(k) != kind(original)).collect();
    candidates[pick % candidates.len()].clone()
}

fn int_map(v: &mut ciborium::Value) -> &mut Vec<(ciborium::Value, ciborium::Value)> {
    match v {
        ciborium::Value::Map(m) => m,
        other => panic!("not a map: {other:?}"),
    }
}

/// A value nested `depth` arrays deep around `inner`.
fn nest(depth: usize, inner: ciborium::Value) -> ciborium::Value {
    (0..depth).fold(inner, |v, _| ciborium::Value::Array(vec![v]))
}

/// Envelope bytes, correctly signed by `a`'s delegate wherever the damage
/// is inside the signed content, malformed at `depth`.
fn malformed_at(a: &Actor, depth: Depth, cut: usize, pick: usize, deep: usize) -> Vec<u8> {
    use vouch_schema::cbor;
    let good = a.envelope("c", NOW, 0, None, "x");
    let batch_bytes = good.content.clone();
    let truncate = |bytes: &[u8]| -> Vec<u8> {
        // A strict prefix, or the whole item with a byte after it.
        if cut.is_multiple_of(7) {
            let mut b = bytes.to_vec();
            b.push(0);
            b
        } else {
            bytes[..cut % bytes.len()].to_vec()
        }
    };
    let signed = |content: Vec<u8>| {
        let id = good.id.clone();
        Envelope::sign(id, None, content, &a.delegate).unwrap().encode()
    };
    let mut batch = cbor::from_slice(&batch_bytes).unwrap();
    match depth {
        Depth::Envelope => return truncate(&good.encode()),
        Depth::Content => return signed(truncate(&batch_bytes)),
        Depth::Certificate => {
            let cert = truncate(&a.cert);
            let events = TelemetryBatch::decode(&batch_bytes).unwrap().events;
            return signed(TelemetryBatch::new(cert, events).encode());
        }
        Depth::BatchMap => {
            let map = int_map(&mut batch);
            match pick % 3 {
                0 => map.push((ciborium::Value::Integer(9.into()), ciborium::Value::Null)),
                1 => {
                    map.remove(pick % map.len());
                }
                _ => {
                    let i = pick % map.len();
                    map[i].1 = wrong_kind(&map[i].1, pick / 3);
                }
            }
        }
        Depth::EventList => {
            let events = &mut int_map(&mut batch)[2].1;
            match pick % 2 {
                0 => *events = wrong_kind(events, pick / 2),
                _ => {
                    if let ciborium::Value::Array(items) = events {
                        items.push(wrong_kind(&ciborium::Value::Map(vec![]), pick / 2));
                    }
                }
            }
        }
        Depth::EventMap | Depth::Nested => {
            let ciborium::Value::Array(items) = &mut int_map(&mut batch)[2].1 else {
                panic!("events are an array")
            };
            let event = int_map(&mut items[0]);
            if matches!(depth, Depth::EventMap) {
                match pick % 2 {
                    0 => event.push((ciborium::Value::Integer(99.into()), ciborium::Value::Null)),
                    _ => {
                        // Any field but `data`, which holds any JSON.
                        let i = 2 + pick % (event.len() - 2);
                        event[i].1 = wrong_kind(&event[i].1, pick / 2);
                    }
                }
            } else {
                let data = int_map(&mut event[1].1);
                let inner = match pick % 4 {
                    0 => ciborium::Value::Bytes(vec![7]),
                    1 => ciborium::Value::Tag(1, Box::new(ciborium::Value::Integer(5.into()))),
                    2 => ciborium::Value::Map(vec![(
                        ciborium::Value::Integer(1.into()),
                        ciborium::Value::Null,
                    )]),
                    // Deeper than any JSON value may nest.
                    _ => nest(vouch_schema::event::MAX_JSON_DEPTH, ciborium::Value::Null),
                };
                data.push((ciborium::Value::Text("zz".into()), nest(deep, inner)));
            }
        }
    }
    signed(cbor::to_vec(&batch))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 96,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Malformed CBOR at every depth of an envelope is refused with the
    /// reason for its layer, and never panics.
    #[test]
    fn malformed_cbor_at_every_depth_is_refused(
        layer in 0..DEPTHS.len(),
        cut in 1usize..4096,
        pick in 0usize..1000,
        deep in 0usize..40,
    ) {
        let a = Actor::new(1, Role::Gateway);
        let mut p = pipeline(&[&a]);
        let depth = DEPTHS[layer];
        let bytes = malformed_at(&a, depth, cut, pick, deep);
        let e = p.validate(&mut msg(bytes), NOW).expect_err("malformed input accepted");
        let expected = match depth {
            Depth::Certificate => "bad_certificate",
            _ => "malformed",
        };
        proptest::prop_assert_eq!(e.outcome(), (Outcome::Reject, expected), "{:?}: {}", depth, e);
    }
}
