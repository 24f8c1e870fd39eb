//! The validation pipeline (DESIGN.md §6) as a pure library: no network, no
//! storage, time injected. Gossip bytes enter as [`Unverified`]; each stage
//! consumes the previous stage's type, so unchecked data cannot reach state,
//! and only [`Pipeline::validate`] can make a [`Verified`].
//!
//! Order: size → strict decode → structure → time → duplicate → certificate
//! (cache, EIP-712, validity at the envelope's time, revocation, stream id,
//! role) → authority → rate limit (checked) → envelope signature → sequence →
//! commit (positions recorded, token taken). Guard state is written only in the
//! commit step, after the signature verified, so forged messages can neither
//! poison the duplicate set nor drain an honest principal's token bucket.
//! The signature step's Keccak half may run ahead of the cheap checks: a
//! node hashes a group's messages side by side before validating them in
//! order ([`Unverified::prehash_all`]), which costs a fraction of hashing
//! them one by one; the ECDSA half, the cost per message, stays behind the
//! rate limit.
//!
//! Envelopes fetched from a peer verifier by sync have theirs,
//! [`Pipeline::validate_synced`]: the same rules, judged at the envelope's
//! own time rather than its arrival (what a peer accepted while this
//! verifier was away must be accepted here too, or verifiers never
//! converge), with no rate limit or chain window (both are about arrival).
//!
//! Control-topic revocations have their own entry, [`Pipeline::validate_revocation`]:
//! size → strict decode → EIP-712 signature → authority (the signer must be a
//! principal of the view) → apply, with failures in the same outcome table.
//!
//! The rules themselves (every check that needs no state) are written once,
//! in [`rules`]; the pipeline adds its guards around them, and `vouch
//! replay`, `vouch envelope verify` and any other source call the same
//! rules.

mod config;
mod error;
mod guards;
mod revocations;
pub mod rules;
pub(crate) mod signature;
mod stats;

use std::collections::HashMap;
use std::sync::Arc;

use vouch_delegation::authority::Authority;
use vouch_delegation::{CertificateError, Role, VerifiedDelegation, VerifiedRevocation};

use vouch_schema::merkle::{Hash, envelope_id};
use vouch_schema::{Address, DecodedBatch, Envelope, MessageId, MessageRef};

use crate::store::Hashed;

pub use config::{RateLimit, RateLimits, ValidationConfig};
pub use error::{ACCEPTED, Outcome, REVOCATION, ValidationError};
pub use stats::{Bound, IngestStats};

use guards::{BoundedMap, ChainState, Position, TokenBucket};
use revocations::{Applied, Revocations};
use rules::{Arrival, Credentials, Evicted, Rules};

/// Where a revocation being restored at start was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// The derived state: no log position is known, so the signer must be a
    /// principal of the view in force now.
    State,
    /// The log: it was accepted under the view in force at its position and
    /// is re-applied as it was.
    Log,
}

/// A gossip message as received: nothing about it is checked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    /// The bytes, hashed once here: their hash is the envelope id, which
    /// the node's envelope index, the duplicate guard's content tag and the
    /// log's chain all take, and a message is tens of KiB.
    content: Hashed,
    partition: Option<u32>,
    /// The signing hash computed ahead, and the envelope decoded for it
    /// when it was kept, when [`Unverified::prehash_all`] did: validation
    /// takes them rather than hash (and decode) the bytes a second time.
    /// Boxed: a queued message stays small.
    prepared: Option<Box<Prepared>>,
}

/// What [`Unverified::prehash_all`] computes ahead of validation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Prepared {
    envelope: Option<Envelope>,
    digest: [u8; 32],
}

/// Whether [`Unverified::prehash_all`] keeps the envelopes it decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Keep them: the messages are validated right away, so validation
    /// need not decode them again.
    Envelopes,
    /// Keep only the digests: the messages wait (a whole group hashed ahead
    /// on several threads), and a decoded envelope is a second copy of a
    /// message's content.
    Digests,
}

impl Unverified {
    /// A message received on gossip `topic`.
    pub fn from_topic(bytes: Vec<u8>, topic: &str) -> Self {
        let partition = vouch_schema::topic::telemetry_partition(topic);
        Unverified { content: Hashed::new(bytes), partition, prepared: None }
    }

    /// Decodes the messages' envelopes and computes their signing hashes
    /// now, on the calling thread, several at a time
    /// ([`Envelope::signing_hashes`]): Keccak over the whole content is the
    /// costliest step that needs no state, and hashing a group's messages
    /// side by side in SIMD lanes costs a fraction of hashing them one by
    /// one. A node does this for each group before it validates the group
    /// in order (and spreads it over its cores). Validation takes the
    /// digest, and the decoded envelope where `keep` kept it, and decides
    /// exactly as without them (they are the same functions of the same
    /// bytes). Bytes that are oversized or do not decode as an envelope are
    /// left for validation to refuse.
    pub fn prehash_all<'a>(messages: impl IntoIterator<Item = &'a mut Unverified>, keep: Keep) {
        let mut pending: Vec<(&mut Unverified, Envelope)> = messages
            .into_iter()
            .filter(|m| {
                m.prepared.is_none() && m.bytes().len() <= vouch_schema::limits::MAX_ENVELOPE_BYTES
            })
            .filter_map(|m| Envelope::decode(m.content.bytes()).ok().map(|e| (m, e)))
            .collect();
        let envelopes: Vec<&Envelope> = pending.iter().map(|(_, e)| e).collect();
        let digests = Envelope::signing_hashes(&envelopes);
        for ((m, envelope), digest) in pending.drain(..).zip(digests) {
            let envelope = (keep == Keep::Envelopes).then_some(envelope);
            m.prepared = Some(Box::new(Prepared { envelope, digest }));
        }
    }

    /// The signing hash, when [`Unverified::prehash_all`] computed it (and
    /// validation has not taken it yet).
    pub fn signing_hash(&self) -> Option<&[u8; 32]> {
        self.prepared.as_ref().map(|p| &p.digest)
    }

    /// The raw message bytes.
    pub fn bytes(&self) -> &[u8] {
        self.content.bytes()
    }

    /// The telemetry partition of the topic it arrived on; `None` when the
    /// topic is not a telemetry topic (rejected as bad structure).
    pub fn partition(&self) -> Option<u32> {
        self.partition
    }

    /// Its envelope id: blake3 of the bytes ([`envelope_id`]).
    pub fn id(&self) -> &Hash {
        self.content.hash()
    }

    /// The raw message bytes, taken back.
    pub fn into_bytes(self) -> Vec<u8> {
        self.content.into_bytes()
    }

    /// The raw message bytes with their hash (the envelope id), taken back:
    /// what the log appends without hashing them again.
    pub fn into_hashed(self) -> Hashed {
        self.content
    }
}

/// A hole in a chain: the envelope's `prev` is not the newest position this
/// verifier accepted on its chain (messages lost, or delivered out of order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The newest position accepted on the chain before this envelope.
    pub last_accepted: Option<MessageRef>,
    /// The envelope's own `prev`.
    pub prev: Option<MessageRef>,
}

/// An envelope that passed every check. Only the pipeline constructs one.
///
/// It keeps the envelope's identity and its decoded batch, not the encoded
/// content: the message's bytes go to the log, and a node holds a whole
/// group of these until the group is durable, so a second copy of every
/// content would double what the group holds.
#[derive(Debug, Clone)]
pub struct Verified {
    id: MessageId,
    batch: DecodedBatch,
    certificate: Arc<VerifiedDelegation>,
    gap: Option<Gap>,
}

impl Verified {
    /// The envelope's identity and numbering.
    pub fn id(&self) -> &MessageId {
        &self.id
    }
    /// Its decoded batch.
    pub fn batch(&self) -> &DecodedBatch {
        &self.batch
    }
    /// The verified certificate of its publisher.
    pub fn certificate(&self) -> &VerifiedDelegation {
        &self.certificate
    }
    /// The chain gap this envelope revealed, if any (also counted in the
    /// pipeline's stats, [`IngestStats::gaps`]).
    pub fn gap(&self) -> Option<Gap> {
        self.gap
    }
}

// ---- Stage types: each is only produced by the stage before it. ----

/// After size, strict decode and structure.
struct Decoded {
    envelope: Envelope,
    batch: DecodedBatch,
    /// The first 8 bytes of the envelope id (blake3 of the whole message):
    /// tells a duplicate from a conflicting message at the same chain position.
    content_tag: u64,
    /// The signing hash, when it was computed before validation.
    digest: Option<[u8; 32]>,
}
/// After the time check.
struct Timely(Decoded);
/// After the (read-only) duplicate check.
struct Fresh(Decoded);
/// After the certificate check.
struct Certified {
    msg: Decoded,
    cert: Arc<VerifiedDelegation>,
}
/// After the authority check.
struct Authorized(Certified);
/// After the (read-only) rate-limit check.
struct Admitted(Certified);
/// After the envelope signature check.
struct Signed(Certified);

/// The validation pipeline with all of its bounded guard state.
pub struct Pipeline {
    config: ValidationConfig,
    rules: Rules,
    authority: Arc<dyn Authority>,
    chains: BoundedMap<(Address, String), ChainState>,
    /// Chain ids tracked per publisher (entries only while it has chains).
    publisher_chains: HashMap<Address, Vec<String>>,
    /// Newest timestamp of any chain evicted while still inside the replay
    /// window: an unknown chain's envelope stamped at or before it is refused,
    /// so filling the chain map cannot reopen a replay.
    chain_watermark_ms: Option<u64>,
    credentials: Credentials,
    buckets: BoundedMap<(Address, Role), TokenBucket>,
    delegates: BoundedMap<Address, HashMap<Address, u64>>,
    revocations: Revocations,
    stats: IngestStats,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("config", &self.config).finish_non_exhaustive()
    }
}

/// How many entries each guard holds now (all stay within their configured bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GuardSizes {
    /// (publisher, chain) pairs tracked.
    pub chains: usize,
    /// Largest number of positions remembered by one chain.
    pub max_chain_positions: usize,
    /// Largest number of chains tracked for one publisher.
    pub max_publisher_chains: usize,
    /// Cached certificates.
    pub certificates: usize,
    /// Cached delegate keys.
    pub delegate_keys: usize,
    /// Token buckets.
    pub buckets: usize,
    /// Principals with tracked delegates.
    pub principals: usize,
    /// Largest live-delegate set of one principal.
    pub max_delegates: usize,
    /// Revocations in force.
    pub revocations: usize,
    /// Largest number of revocations one principal has in force.
    pub max_principal_revocations: usize,
}

impl Pipeline {
    /// A pipeline with empty guards, answering authority from `authority`.
    pub fn new(config: ValidationConfig, authority: Arc<dyn Authority>) -> Self {
        Pipeline {
            rules: Rules::new(&config),
            chains: BoundedMap::new(config.max_chains),
            publisher_chains: HashMap::new(),
            chain_watermark_ms: None,
            credentials: Credentials::new(config.certificate_cache, config.delegate_key_cache),
            buckets: BoundedMap::new(config.max_buckets),
            delegates: BoundedMap::new(config.max_principals),
            revocations: Revocations::new(
                config.max_unknown_revocations_per_principal,
                config.certificate_clock_skew_secs,
            ),
            stats: IngestStats::default(),
            authority,
            config,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &ValidationConfig {
        &self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Every (outcome, reason, count): `vouch_ingest_total{outcome,reason}`.
    pub fn snapshot(&self) -> Vec<(Outcome, &'static str, u64)> {
        self.stats.snapshot()
    }

    /// Current guard sizes, to check they stay within bounds.
    pub fn guard_sizes(&self) -> GuardSizes {
        GuardSizes {
            chains: self.chains.len(),
            max_chain_positions: self.chains.values().map(ChainState::positions).max().unwrap_or(0),
            max_publisher_chains: self.publisher_chains.values().map(Vec::len).max().unwrap_or(0),
            certificates: self.credentials.certificates(),
            delegate_keys: self.credentials.keys(),
            buckets: self.buckets.len(),
            principals: self.delegates.len(),
            max_delegates: self.delegates.values().map(HashMap::len).max().unwrap_or(0),
            revocations: self.revocations.len(),
            max_principal_revocations: self.revocations.max_per_principal(),
        }
    }

    /// Checks a control-topic revocation and applies it: size, strict
    /// decode, EIP-712 signature for this network, and that the signer is a
    /// principal of the authority view (any role). From then on every
    /// envelope of that (principal, delegate) stamped at or after
    /// `revokedAt` is rejected, and once `revokedAt` has passed on the
    /// verifier's clock every new arrival from it is rejected whatever its
    /// stamp (a stolen key could backdate). Envelopes accepted before stay
    /// valid. Never rate-limited and never refused for capacity: a principal
    /// past its bound of revocations of delegates this verifier never saw
    /// loses its own oldest such one instead. An earlier `revokedAt` for the
    /// same pair wins; a revocation that changes nothing is
    /// [`ValidationError::RevocationInForce`]. Counted by the caller (the
    /// control topic has its own counters), through [`ValidationError::outcome`].
    pub fn validate_revocation(
        &mut self,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<VerifiedRevocation, ValidationError> {
        let verified = self.rules.revocation(bytes)?;
        Rules::revoker(&self.authority.current(), &verified)?;
        self.apply(&verified, now_ms, true)?;
        Ok(verified)
    }

    /// Checks a control-topic checkpoint: strict decode, its verifier-role
    /// certificate and signature, and the signer's verifier standing in the
    /// authority view. Whether it is new is the checkpoint book's question.
    pub fn validate_checkpoint(
        &self,
        bytes: &[u8],
    ) -> Result<vouch_delegation::VerifiedCheckpoint, ValidationError> {
        let verified = self.rules.checkpoint(bytes)?;
        Rules::checkpointer(&self.authority.current(), &verified)?;
        Ok(verified)
    }

    /// Re-applies a revocation this verifier accepted before (read back at
    /// start). A revocation read from the state must still have a principal
    /// of the current view as its signer; one read from the log is applied
    /// as recorded. The per-principal bound is enforced once every
    /// revocation is back, by [`Pipeline::finish_restore`], so that what the
    /// log tail shows of the delegates counts first.
    pub fn restore_revocation(
        &mut self,
        bytes: &[u8],
        from: Restored,
        now_ms: u64,
    ) -> Result<VerifiedRevocation, ValidationError> {
        let verified = self.rules.revocation(bytes)?;
        if from == Restored::State {
            Rules::revoker(&self.authority.current(), &verified)?;
        }
        self.apply(&verified, now_ms, false)?;
        Ok(verified)
    }

    /// Brings every principal's revocations back within their bound after
    /// [`Pipeline::restore_revocation`] (oldest `revokedAt` evicted first,
    /// counted); revocations of delegates seen since are kept.
    pub fn finish_restore(&mut self, now_ms: u64) {
        let evicted = self.revocations.trim_all(now_ms / 1000);
        self.stats.evicted(Bound::Revocations, evicted);
    }

    fn apply(
        &mut self,
        revocation: &VerifiedRevocation,
        now_ms: u64,
        trim: bool,
    ) -> Result<(), ValidationError> {
        let key = (revocation.principal(), revocation.delegate());
        // A delegate with an accepted envelope under a live certificate is
        // one this verifier knows; its revocation is protected.
        let known = self.delegates.peek(&key.0).and_then(|live| live.get(&key.1)).copied();
        let revoked_at_ms = revocation.revoked_at().saturating_mul(1000);
        let (applied, evicted) =
            self.revocations.apply(key, revoked_at_ms, known, now_ms / 1000, trim);
        self.stats.evicted(Bound::Revocations, evicted);
        match applied {
            Applied::New | Applied::Earlier => Ok(()),
            Applied::Unchanged => Err(ValidationError::RevocationInForce),
        }
    }

    /// Runs every stage on `msg` at verifier time `now_ms`, counts the
    /// outcome, and on success commits the guard state and returns [`Verified`].
    /// An envelope [`Unverified::prehash_all`] prepared is taken out of
    /// `msg` rather than decoded again.
    pub fn validate(
        &mut self,
        msg: &mut Unverified,
        now_ms: u64,
    ) -> Result<Verified, ValidationError> {
        let result = self.run(msg, now_ms);
        match &result {
            Ok(_) => self.stats.record(Outcome::Accept, ACCEPTED),
            Err(e) => {
                let (outcome, reason) = e.outcome();
                self.stats.record(outcome, reason);
            }
        }
        result
    }

    /// Runs the stages that do not depend on arrival on an envelope sync
    /// fetched from a peer: size, decode, structure (a partition this
    /// verifier follows, `followed`), not ahead of the clock, not a second
    /// or conflicting copy of a position this verifier remembers, the
    /// certificate and revocations at the envelope's own time, authority,
    /// signature. Counted apart from gossip (the caller does). The caller
    /// must have checked the envelope id is not already held: sync fetches
    /// late positions, so the chain window cannot tell.
    pub fn validate_synced(
        &mut self,
        bytes: &[u8],
        followed: vouch_net::PartitionSet,
        now_ms: u64,
    ) -> Result<Verified, ValidationError> {
        let decoded = self.decode(bytes, Arrival::Synced(followed))?;
        let timely = self.check_future(decoded, now_ms)?;
        let fresh = self.check_position(timely)?;
        let certified = self.check_certificate_at_stamp(fresh)?;
        let Authorized(certified) = self.check_authority(certified)?;
        // Sync is paced by its own bounds (`[sync]`); rate limits are about
        // arrival, and the publisher's tokens were taken where it arrived.
        let signed = self.check_signature(Admitted(certified))?;
        let Signed(Certified { msg, cert }) = signed;
        self.record_delegate(&cert, now_ms);
        Ok(Verified { id: msg.envelope.id, batch: msg.batch, certificate: cert, gap: None })
    }

    /// Counts an envelope refused because its id is held already (by a
    /// route the chain window does not see: sync, or a late gossip copy of
    /// what sync fetched), and returns the error.
    pub fn refuse_held(&mut self) -> ValidationError {
        let e = ValidationError::Duplicate;
        let (outcome, reason) = e.outcome();
        self.stats.record(outcome, reason);
        e
    }

    fn run(&mut self, msg: &mut Unverified, now_ms: u64) -> Result<Verified, ValidationError> {
        let arrival = Arrival::Topic(msg.partition);
        let decoded = match msg.prepared.take().map(|p| *p) {
            Some(Prepared { envelope: Some(envelope), digest }) => {
                let (envelope, batch) = self.rules.admit(envelope, arrival)?;
                let content_tag = content_tag(msg.id());
                Decoded { envelope, batch, content_tag, digest: Some(digest) }
            }
            Some(Prepared { envelope: None, digest }) => {
                let decoded = self.decode_with_id(msg.bytes(), msg.id(), arrival)?;
                Decoded { digest: Some(digest), ..decoded }
            }
            None => self.decode_with_id(msg.bytes(), msg.id(), arrival)?,
        };
        let timely = self.check_time(decoded, now_ms)?;
        let fresh = self.check_duplicate(timely, now_ms)?;
        let certified = self.check_certificate(fresh, now_ms)?;
        let authorized = self.check_authority(certified)?;
        let admitted = self.check_rate(authorized, now_ms)?;
        let signed = self.check_signature(admitted)?;
        Ok(self.commit(signed, now_ms))
    }

    fn check_future(&self, d: Decoded, now_ms: u64) -> Result<Timely, ValidationError> {
        let ts = d.envelope.id.timestamp;
        if ts > now_ms.saturating_add(self.config.max_future_skew_ms) {
            return Err(ValidationError::Future { ahead_ms: ts - now_ms });
        }
        Ok(Timely(d))
    }

    fn check_time(&self, d: Decoded, now_ms: u64) -> Result<Timely, ValidationError> {
        let Timely(d) = self.check_future(d, now_ms)?;
        let ts = d.envelope.id.timestamp;
        if now_ms.saturating_sub(ts) > self.config.replay_window_ms {
            return Err(ValidationError::Stale { age_ms: now_ms - ts });
        }
        Ok(Timely(d))
    }

    fn check_duplicate(&self, Timely(d): Timely, now_ms: u64) -> Result<Fresh, ValidationError> {
        let publisher = d.envelope.id.publisher;
        let key = (publisher, d.envelope.id.msg_chain_id.clone());
        if let Some(chain) = self.chains.peek(&key) {
            return match chain.check(
                d.envelope.id.as_ref(),
                d.content_tag,
                self.config.reorder_window_ms,
            ) {
                Position::New => Ok(Fresh(d)),
                Position::Duplicate => Err(ValidationError::Duplicate),
                Position::Conflict => Err(ValidationError::Conflict),
                Position::TooOld => Err(ValidationError::OutOfOrder),
            };
        }
        if self.chain_watermark_ms.is_some_and(|w| d.envelope.id.timestamp <= w) {
            return Err(ValidationError::OutOfOrder);
        }
        if let Some(ids) = self.publisher_chains.get(&publisher)
            && ids.len() >= self.config.max_chains_per_publisher.max(1)
            && !ids.iter().any(|id| self.chain_idle(publisher, id, now_ms))
        {
            return Err(ValidationError::TooManyChains);
        }
        Ok(Fresh(d))
    }

    /// Whether a tracked chain's newest message is older than the replay
    /// window (everything it could still be replayed with is stale anyway).
    fn chain_idle(&self, publisher: Address, id: &str, now_ms: u64) -> bool {
        self.chains.peek(&(publisher, id.to_owned())).is_none_or(|c| {
            c.newest
                .is_none_or(|n| now_ms.saturating_sub(n.timestamp) > self.config.replay_window_ms)
        })
    }

    /// Makes room for and tracks a new chain of `publisher`.
    fn track_chain(&mut self, key: (Address, String), chain: ChainState, now_ms: u64) {
        let publisher = key.0;
        // Reclaim this publisher's idle chains when it is at its bound.
        if let Some(ids) = self.publisher_chains.get(&publisher)
            && ids.len() >= self.config.max_chains_per_publisher.max(1)
        {
            let idle: Vec<String> =
                ids.iter().filter(|id| self.chain_idle(publisher, id, now_ms)).cloned().collect();
            for id in idle {
                self.chains.remove(&(publisher, id.clone()));
                self.forget_chain(publisher, &id);
            }
        }
        self.publisher_chains.entry(publisher).or_default().push(key.1.clone());
        if let Some(((old_publisher, old_id), old)) = self.chains.insert_evicting(key, chain) {
            self.stats.evicted(Bound::Chains, 1);
            self.forget_chain(old_publisher, &old_id);
            if let Some(newest) = old.newest
                && now_ms.saturating_sub(newest.timestamp) <= self.config.replay_window_ms
            {
                let w = self.chain_watermark_ms.get_or_insert(0);
                *w = (*w).max(newest.timestamp);
            }
        }
    }

    fn forget_chain(&mut self, publisher: Address, id: &str) {
        if let Some(ids) = self.publisher_chains.get_mut(&publisher) {
            ids.retain(|x| x != id);
            if ids.is_empty() {
                self.publisher_chains.remove(&publisher);
            }
        }
    }

    /// A synced envelope's position: refused only as a copy, or a
    /// conflicting message, of a position this verifier remembers (older
    /// positions are what sync is for).
    fn check_position(&self, Timely(d): Timely) -> Result<Fresh, ValidationError> {
        let key = (d.envelope.id.publisher, d.envelope.id.msg_chain_id.clone());
        let remembered = self.chains.peek(&key).map(|chain| {
            chain.check(d.envelope.id.as_ref(), d.content_tag, self.config.reorder_window_ms)
        });
        match remembered {
            Some(Position::Duplicate) => Err(ValidationError::Duplicate),
            Some(Position::Conflict) => Err(ValidationError::Conflict),
            _ => Ok(Fresh(d)),
        }
    }

    /// The certificate, its validity and revocations at the envelope's own
    /// time only (a synced envelope's arrival says nothing about it), and
    /// its binding to the envelope.
    fn check_certificate_at_stamp(
        &mut self,
        Fresh(d): Fresh,
    ) -> Result<Certified, ValidationError> {
        let cert = self.certificate(&d)?;
        let revoked_at = self.revocations.revoked_at_ms(cert.principal(), cert.delegate());
        Rules::not_revoked(&d.envelope, revoked_at)?;
        self.rules.bind(&d.envelope, &d.batch, &cert)?;
        Ok(Certified { msg: d, cert })
    }

    fn check_certificate(
        &mut self,
        Fresh(d): Fresh,
        now_ms: u64,
    ) -> Result<Certified, ValidationError> {
        let cert = self.certificate(&d)?;
        // Validity is judged at the envelope's stamp, which its publisher
        // chooses; bound it by the arrival time too, so an expired
        // certificate cannot keep publishing envelopes back-dated inside the
        // replay window. (Only here, at arrival: re-admitting logged
        // envelopes at start and `vouch replay` have no arrival clock.)
        let now_secs = now_ms / 1000;
        let grace = self.config.certificate_clock_skew_secs;
        if cert.not_after().saturating_add(grace) < now_secs {
            return Err(ValidationError::ExpiredCertificate(CertificateError::Expired {
                not_after: cert.not_after(),
                now: now_secs,
            }));
        }
        let key = (cert.principal(), cert.delegate());
        let revoked_at = self.revocations.revoked_at_ms(key.0, key.1);
        // Once revokedAt has passed on this verifier's clock, every new
        // arrival from the delegate is refused whatever its stamp: a stolen
        // key could backdate.
        let at_arrival = revoked_at.filter(|&at| now_ms >= at).map(|at| ValidationError::Revoked {
            delegate: key.1,
            revoked_at_ms: at,
            timestamp_ms: d.envelope.id.timestamp,
        });
        let revoked = match (Rules::not_revoked(&d.envelope, revoked_at), at_arrival) {
            (Err(e), _) | (Ok(()), Some(e)) => Err(e),
            (Ok(()), None) => Ok(()),
        };
        if let Err(e) = revoked {
            // The delegate is real: its revocation is protected from now on.
            self.revocations.mark_known(key, cert.not_after());
            return Err(e);
        }
        self.rules.bind(&d.envelope, &d.batch, &cert)?;
        Ok(Certified { msg: d, cert })
    }

    /// The batch's certificate, verified at the envelope's time (cached by hash).
    fn certificate(&mut self, d: &Decoded) -> Result<Arc<VerifiedDelegation>, ValidationError> {
        let mut evicted = Evicted::default();
        let cert = self.credentials.certificate(&self.rules, &d.envelope, &d.batch, &mut evicted);
        self.stats.evicted(Bound::Certificates, evicted.certificates);
        cert
    }

    fn check_authority(&self, c: Certified) -> Result<Authorized, ValidationError> {
        Rules::authorize(&self.authority.current(), &c.cert)?;
        Ok(Authorized(c))
    }

    fn check_rate(
        &mut self,
        Authorized(c): Authorized,
        now_ms: u64,
    ) -> Result<Admitted, ValidationError> {
        let principal = c.cert.principal();
        let delegate = c.cert.delegate();
        let now_secs = now_ms / 1000;
        // Live-delegate bound: a new delegate is refused while the principal
        // already has the maximum number of unexpired ones.
        if let Some(live) = self.delegates.peek(&principal)
            && !live.contains_key(&delegate)
            && live.values().filter(|not_after| **not_after > now_secs).count()
                >= self.config.max_delegates_per_principal
        {
            return Err(ValidationError::TooManyDelegates);
        }
        let role = c.cert.role();
        let limit = self.config.rate_limits.for_role(role);
        if let Some(bucket) = self.buckets.get_mut(&(principal, role))
            && !bucket.has_token(limit.rate_per_sec, limit.burst, now_ms)
        {
            return Err(ValidationError::RateLimited);
        }
        if limit.burst == 0 {
            return Err(ValidationError::RateLimited);
        }
        Ok(Admitted(c))
    }

    fn check_signature(&mut self, Admitted(c): Admitted) -> Result<Signed, ValidationError> {
        let mut evicted = Evicted::default();
        let envelope = &c.msg.envelope;
        let digest = c.msg.digest.unwrap_or_else(|| envelope.signing_hash());
        let checked = self.credentials.signature(envelope, digest, &mut evicted);
        self.stats.evicted(Bound::DelegateKeys, evicted.keys);
        checked.map(|()| Signed(c))
    }

    /// The only place guard state changes for an envelope.
    fn commit(&mut self, Signed(c): Signed, now_ms: u64) -> Verified {
        let Certified { msg, cert } = c;
        let principal = cert.principal();
        let role = cert.role();
        // Token.
        let limit = self.config.rate_limits.for_role(role);
        match self.buckets.get_mut(&(principal, role)) {
            Some(bucket) => bucket.take(limit.rate_per_sec, limit.burst, now_ms),
            None => {
                let mut bucket = TokenBucket::full(limit.burst, now_ms);
                bucket.take(limit.rate_per_sec, limit.burst, now_ms);
                let evicted = self.buckets.insert((principal, role), bucket);
                self.stats.evicted(Bound::Buckets, evicted);
            }
        }
        self.record_delegate(&cert, now_ms);
        let gap = self.record_position(&msg, now_ms);
        if gap.is_some() {
            self.stats.gap();
        }
        Verified { id: msg.envelope.id, batch: msg.batch, certificate: cert, gap }
    }

    /// Re-applies an envelope this verifier accepted before (read back from
    /// its own log after a restart) to the duplicate and live-delegate
    /// guards, so copies of what is already durable are refused as before.
    /// Nothing is counted and no token is taken. Returns `false` (and
    /// changes nothing) for an envelope older than the replay window: the
    /// stale check refuses its copies anyway.
    pub fn readmit(&mut self, bytes: &[u8], now_ms: u64) -> Result<bool, ValidationError> {
        let msg = self.decode(bytes, Arrival::Stored)?;
        if now_ms.saturating_sub(msg.envelope.id.timestamp) > self.config.replay_window_ms {
            return Ok(false);
        }
        let cert = self.certificate(&msg)?;
        self.record_delegate(&cert, now_ms);
        self.record_position(&msg, now_ms);
        Ok(true)
    }

    /// Records a live delegate of its principal.
    fn record_delegate(&mut self, cert: &VerifiedDelegation, now_ms: u64) {
        let now_secs = now_ms / 1000;
        match self.delegates.get_mut(&cert.principal()) {
            Some(live) => {
                live.retain(|_, not_after| *not_after > now_secs);
                let entry = live.entry(cert.delegate()).or_insert(0);
                *entry = (*entry).max(cert.not_after());
            }
            None => {
                let live = HashMap::from([(cert.delegate(), cert.not_after())]);
                let evicted = self.delegates.insert(cert.principal(), live);
                self.stats.evicted(Bound::Principals, evicted);
            }
        }
        // A revocation scheduled for later protects a delegate seen now.
        self.revocations.mark_known((cert.principal(), cert.delegate()), cert.not_after());
    }

    /// Records the envelope's position in its chain's duplicate window.
    fn record_position(&mut self, msg: &Decoded, now_ms: u64) -> Option<Gap> {
        let at = msg.envelope.id.as_ref();
        let key = (msg.envelope.id.publisher, msg.envelope.id.msg_chain_id.clone());
        let (reorder, per_chain) = (self.config.reorder_window_ms, self.config.dedup_per_chain);
        match self.chains.get_mut(&key) {
            Some(chain) => {
                let last = chain.newest;
                let gap = (last.is_some_and(|l| at > l) && msg.envelope.prev != last)
                    .then_some(Gap { last_accepted: last, prev: msg.envelope.prev });
                let evicted = chain.record(at, msg.content_tag, reorder, per_chain);
                self.stats.evicted(Bound::ChainPositions, evicted);
                gap
            }
            None => {
                let mut chain = ChainState::default();
                chain.record(at, msg.content_tag, reorder, per_chain);
                self.track_chain(key, chain, now_ms);
                None
            }
        }
    }
}

impl Pipeline {
    /// Stages 1–3 (the rules' decode), plus the content tag the duplicate guard keeps.
    fn decode(&self, bytes: &[u8], arrival: Arrival) -> Result<Decoded, ValidationError> {
        self.decode_with_id(bytes, &envelope_id(bytes), arrival)
    }

    /// [`Pipeline::decode`] of bytes whose envelope id is known.
    fn decode_with_id(
        &self,
        bytes: &[u8],
        id: &Hash,
        arrival: Arrival,
    ) -> Result<Decoded, ValidationError> {
        let (envelope, batch) = self.rules.decode(bytes, arrival)?;
        Ok(Decoded { envelope, batch, content_tag: content_tag(id), digest: None })
    }
}

/// The duplicate guard's content tag of an envelope id: its first 8 bytes.
fn content_tag(id: &Hash) -> u64 {
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&id[..8]);
    u64::from_le_bytes(tag)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use vouch_schema::topic::telemetry_topic;
    use vouch_testkit::actor::ChainSigner;
    use vouch_testkit::fixtures;

    /// `Keep` decides whether a prepared message carries its decoded
    /// envelope (a second copy of its content) or only the digest; both
    /// carry the digest validation would compute.
    #[test]
    fn keep_decides_what_a_prepared_message_holds() {
        let mut chain = ChainSigner::new(1, 1, "keep");
        let bytes = chain.next(|ts| fixtures::stamped(3, ts)).encode();
        let expected = Envelope::decode(&bytes).unwrap();
        for (keep, kept) in [(Keep::Envelopes, Some(&expected)), (Keep::Digests, None)] {
            let mut msg = Unverified::from_topic(bytes.clone(), &telemetry_topic(1));
            Unverified::prehash_all([&mut msg], keep);
            let prepared = msg.prepared.as_deref().unwrap();
            assert_eq!(prepared.envelope.as_ref(), kept, "{keep:?}");
            assert_eq!(prepared.digest, expected.signing_hash(), "{keep:?}");
        }
    }
}
