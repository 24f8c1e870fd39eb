//! Every way validation can fail, and the one table that maps each failure
//! to a gossip [`Outcome`] and a stable reason label (DESIGN.md §6).

use vouch_delegation::{CertificateError, CheckpointError, DecodeError, Role};
use vouch_schema::{Address, BatchError, EnvelopeError, SignatureError};

/// What gossip is told about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Valid: forward it and keep it.
    Accept,
    /// Invalid in a way the forwarding peer should have caught: drop and penalize.
    Reject,
    /// Not (yet) useful, but not the peer's fault: drop without penalty.
    Ignore,
}

impl Outcome {
    /// `"accept"`, `"reject"` or `"ignore"`: the `outcome` label of `vouch_ingest_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accept => "accept",
            Outcome::Reject => "reject",
            Outcome::Ignore => "ignore",
        }
    }
}

/// The reason label of an accepted message.
pub const ACCEPTED: &str = "accepted";

/// The reason label of an accepted control-topic revocation.
pub const REVOCATION: &str = "revocation";

/// Why a message was not accepted. [`ValidationError::outcome`] is the single
/// place that turns each case into an [`Outcome`] and a reason label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// Larger than the envelope size limit (checked before decoding).
    #[error("message is {0} bytes, over the size limit")]
    Oversize(usize),
    /// Not a strictly encoded envelope.
    #[error("malformed envelope: {0}")]
    Envelope(EnvelopeError),
    /// The envelope's content is not a strictly encoded telemetry batch.
    #[error("malformed batch: {0}")]
    Batch(BatchError),
    /// Well-formed but structurally wrong (version, topic not a telemetry partition).
    #[error("bad structure: {0}")]
    Structure(&'static str),
    /// The envelope's partition is not the partition of the topic it came on.
    #[error("envelope partition {envelope} arrived on partition {topic}")]
    WrongPartition {
        /// The partition inside the envelope.
        envelope: u32,
        /// The partition of the gossip topic.
        topic: u32,
    },
    /// Stamped further in the future than the allowed clock skew.
    #[error("stamped {ahead_ms} ms in the future")]
    Future {
        /// How far ahead of the verifier's clock.
        ahead_ms: u64,
    },
    /// Older than the replay window.
    #[error("stamped {age_ms} ms ago, older than the replay window")]
    Stale {
        /// The message's age.
        age_ms: u64,
    },
    /// This (publisher, chain, timestamp, seq) was already accepted, same bytes.
    #[error("duplicate message")]
    Duplicate,
    /// This (publisher, chain, timestamp, seq) was already accepted with other content.
    #[error("another message was already accepted at this chain position")]
    Conflict,
    /// Behind its chain by more than the reorder window (or below the pruned floor).
    #[error("behind its chain by more than the reorder window")]
    OutOfOrder,
    /// The certificate does not decode.
    #[error("certificate does not decode: {0}")]
    CertificateDecode(#[source] DecodeError),
    /// The certificate does not verify (signature, network, lifetime, validity).
    #[error("bad certificate: {0}")]
    BadCertificate(#[source] CertificateError),
    /// The certificate was expired at the envelope's timestamp (or when
    /// the envelope arrived, past the allowed skew).
    #[error("certificate expired: {0}")]
    ExpiredCertificate(#[source] CertificateError),
    /// The certificate delegates another key than the envelope's publisher.
    #[error("certificate delegates {delegate}, not the envelope's publisher {publisher}")]
    WrongDelegate {
        /// The certificate's delegate.
        delegate: Address,
        /// The envelope's publisher.
        publisher: Address,
    },
    /// The delegate was revoked by its principal: at or before the
    /// envelope's timestamp, or before it arrived.
    #[error(
        "delegate {delegate} was revoked at {revoked_at_ms} ms (envelope stamped {timestamp_ms} ms)"
    )]
    Revoked {
        /// The revoked delegate.
        delegate: Address,
        /// When it was revoked, ms.
        revoked_at_ms: u64,
        /// The envelope's timestamp, ms.
        timestamp_ms: u64,
    },
    /// The stream id is not `<principal><stream path>`.
    #[error("stream id {stream_id:?} does not belong to the certificate's principal")]
    WrongStream {
        /// The envelope's stream id.
        stream_id: String,
    },
    /// The certificate's role may not publish what this message carries.
    #[error("role {0} may not publish this")]
    WrongRole(Role),
    /// The principal does not hold the standing its role needs in the authority view.
    #[error("principal {principal} is not allowed as {role} by the authority view")]
    Unauthorized {
        /// The certificate's principal.
        principal: Address,
        /// The certificate's role.
        role: Role,
    },
    /// The publisher already has the maximum number of chains in the window.
    #[error("publisher has too many chains")]
    TooManyChains,
    /// The principal already has the maximum number of live delegates.
    #[error("principal has too many live delegates")]
    TooManyDelegates,
    /// The principal's token bucket for the role is empty.
    #[error("rate limited")]
    RateLimited,
    /// The envelope signature is not the publisher's.
    #[error("envelope signature does not match its delegate: {0}")]
    BadSignature(SignatureError),
    /// A control-topic message is not a strictly encoded revocation.
    #[error("malformed revocation: {0}")]
    MalformedRevocation(#[source] DecodeError),
    /// The revocation was signed for another network or not by its principal.
    #[error("revocation does not verify: {0}")]
    RevocationSignature(#[source] CertificateError),
    /// The revocation's signer is not a principal of the authority view:
    /// only principals may revoke.
    #[error("revocation signer {0} is not a principal of the authority view")]
    NotAPrincipal(Address),
    /// The revocation is already in force from the same or an earlier time.
    #[error("revocation already in force")]
    RevocationInForce,
    /// A control-topic message is not a strictly encoded checkpoint.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(#[source] DecodeError),
    /// The checkpoint's certificate or signature does not verify.
    #[error("{0}")]
    BadCheckpoint(#[source] CheckpointError),
    /// The checkpoint's signer does not hold verifier standing in the
    /// authority view: only verifiers sign checkpoints.
    #[error("checkpoint signer {0} is not a verifier of the authority view")]
    NotAVerifier(Address),
    /// This verifier's checkpoint of that minute is already held.
    #[error("checkpoint already held")]
    CheckpointKnown,
    /// The checkpoint book holds its most verifiers for that minute, or the
    /// minute is older than the book keeps.
    #[error("no room for the checkpoint")]
    CheckpointsFull,
}

impl ValidationError {
    /// Whether a peer verifier that served this envelope by sync is to
    /// blame: not for an Ignore, nor for what an honest peer may hold
    /// because its view differed (a revocation or an authority change it
    /// had not seen yet); for everything an honest verifier never accepts.
    pub fn blames_sync_peer(&self) -> bool {
        self.outcome().0 == Outcome::Reject
            && !matches!(
                self,
                ValidationError::Revoked { .. }
                    | ValidationError::Unauthorized { .. }
                    | ValidationError::ExpiredCertificate(_)
            )
    }

    /// THE outcome table: the gossip outcome and the stable reason label of
    /// each failure. Reject means the forwarding peer should have caught it.
    pub fn outcome(&self) -> (Outcome, &'static str) {
        use Outcome::{Ignore, Reject};
        match self {
            ValidationError::Oversize(_) => (Reject, "oversize"),
            ValidationError::Envelope(EnvelopeError::Oversize(_)) => (Reject, "oversize"),
            ValidationError::Envelope(EnvelopeError::Version(_)) => (Reject, "bad_structure"),
            ValidationError::Envelope(_) => (Reject, "malformed"),
            ValidationError::Batch(BatchError::Oversize(_)) => (Reject, "oversize"),
            ValidationError::Batch(_) => (Reject, "malformed"),
            ValidationError::Structure(_) => (Reject, "bad_structure"),
            ValidationError::WrongPartition { .. } => (Reject, "bad_structure"),
            ValidationError::Future { .. } => (Ignore, "future"),
            ValidationError::Stale { .. } => (Ignore, "stale"),
            ValidationError::Duplicate => (Ignore, "duplicate"),
            ValidationError::Conflict => (Ignore, "conflict"),
            ValidationError::OutOfOrder => (Ignore, "out_of_order"),
            ValidationError::CertificateDecode(_) => (Reject, "bad_certificate"),
            ValidationError::BadCertificate(_) => (Reject, "bad_certificate"),
            ValidationError::ExpiredCertificate(_) => (Reject, "expired_certificate"),
            ValidationError::WrongDelegate { .. } => (Reject, "bad_certificate"),
            ValidationError::Revoked { .. } => (Reject, "revoked"),
            ValidationError::WrongStream { .. } => (Reject, "wrong_stream"),
            ValidationError::WrongRole(_) => (Reject, "wrong_role"),
            ValidationError::Unauthorized { .. } => (Reject, "unauthorized"),
            ValidationError::TooManyChains => (Ignore, "too_many_chains"),
            ValidationError::TooManyDelegates => (Ignore, "too_many_delegates"),
            ValidationError::RateLimited => (Ignore, "rate_limited"),
            ValidationError::BadSignature(_) => (Reject, "bad_signature"),
            ValidationError::MalformedRevocation(_) => (Reject, "malformed"),
            ValidationError::RevocationSignature(_) => (Reject, "bad_signature"),
            ValidationError::NotAPrincipal(_) => (Reject, "unauthorized"),
            ValidationError::RevocationInForce => (Ignore, "duplicate"),
            ValidationError::MalformedCheckpoint(_) => (Reject, "malformed"),
            ValidationError::BadCheckpoint(_) => (Reject, "bad_checkpoint"),
            ValidationError::NotAVerifier(_) => (Reject, "unauthorized"),
            ValidationError::CheckpointKnown => (Ignore, "duplicate"),
            ValidationError::CheckpointsFull => (Ignore, "checkpoints_full"),
        }
    }
}
