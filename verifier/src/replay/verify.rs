//! The audit checks of one logged envelope, against the authority view and
//! revocations the log recorded before it.
//!
//! What the node checked at arrival and a replay checks again: strict
//! decoding, the certificate (EIP-712 signature, network, lifetime, valid at
//! the envelope's timestamp), that it delegates the envelope's publisher,
//! the stream id and role, the principal's standing in the recorded view,
//! revocation at the envelope's time, and the envelope signature. What only
//! the verifier's clock at arrival could decide (future/stale, rate limits,
//! live-delegate bounds, duplicates inside the replay window, a certificate
//! whose `notAfter` plus the clock skew had passed when the envelope
//! arrived, a revocation whose `revokedAt` had passed at arrival) is not
//! re-checked: the log records no arrival time, and an envelope in the log
//! was accepted at a time when those checks passed.

use std::collections::HashMap;
use std::sync::Arc;

use vouch_delegation::authority::AuthorityView;
use vouch_delegation::{
    CertificateError, Eip712Network, Policy, Role, SignedDelegation, VerifiedDelegation,
};
use vouch_schema::{
    Address, BatchError, Envelope, EnvelopeError, Origin, SignatureError, TelemetryBatch, limits,
};

use crate::store::Position;
use crate::validate::ValidationConfig;
use crate::validate::signature::{DelegateKey, SignatureChecker};

/// Entries each worker caches (verified certificates, delegate keys); a full
/// cache is emptied and refilled, which only costs re-verification.
const CACHE_ENTRIES: usize = 16_384;

/// Revocations in force: (principal, delegate) → revoked at, ms.
pub(crate) type Revocations = HashMap<(Address, Address), u64>;

/// What is wrong with one record. Messages are stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordProblem {
    /// The frame or its segment header fails the hash chain or format checks.
    #[error("{0}")]
    Chain(crate::store::Problem),
    /// Larger than the envelope size limit.
    #[error("envelope is {0} bytes, over the size limit")]
    Oversize(usize),
    /// Not a strictly encoded envelope.
    #[error("malformed envelope: {0}")]
    Envelope(EnvelopeError),
    /// The envelope's content is not a strictly encoded telemetry batch.
    #[error("malformed batch: {0}")]
    Batch(BatchError),
    /// The certificate does not decode.
    #[error("certificate does not decode: {0}")]
    CertificateDecode(String),
    /// The certificate does not verify at the envelope's timestamp.
    #[error("certificate does not verify at the envelope's timestamp: {0}")]
    Certificate(CertificateError),
    /// The certificate delegates another key than the envelope's publisher.
    #[error("certificate delegates {delegate}, not the envelope's publisher {publisher}")]
    WrongDelegate {
        /// The certificate's delegate.
        delegate: Address,
        /// The envelope's publisher.
        publisher: Address,
    },
    /// The stream id is not `<principal><stream path>`.
    #[error("stream id {0:?} does not belong to the certificate's principal")]
    WrongStream(String),
    /// The certificate's role may not publish this.
    #[error("role {0} may not publish this")]
    WrongRole(&'static str),
    /// No authority view was recorded before this record (and none was given).
    #[error("no authority view recorded before this record")]
    NoAuthorityView,
    /// The recorded view in force does not allow the principal in its role.
    #[error("principal {principal} is not allowed as {role} by the recorded authority view {view}")]
    Unauthorized {
        /// The certificate's principal.
        principal: Address,
        /// The certificate's role.
        role: &'static str,
        /// The view's hash, hex.
        view: String,
    },
    /// A revocation recorded earlier covers the envelope's timestamp.
    #[error(
        "delegate {delegate} was revoked at {revoked_at_ms} ms, not after the envelope's timestamp {timestamp_ms} ms"
    )]
    Revoked {
        /// The revoked delegate.
        delegate: Address,
        /// When it was revoked, ms.
        revoked_at_ms: u64,
        /// The envelope's timestamp, ms.
        timestamp_ms: u64,
    },
    /// The envelope signature is not its delegate's.
    #[error("envelope signature does not match its delegate: {0}")]
    Signature(SignatureError),
    /// A recorded authority view does not decode.
    #[error("recorded authority view does not decode: {0}")]
    BadView(String),
    /// A recorded revocation does not decode or verify.
    #[error("recorded revocation does not verify: {0}")]
    BadRevocation(String),
    /// A recorded revocation was signed by an address that is not a
    /// principal of the view in force at its position: the node should
    /// have refused it.
    #[error(
        "revocation signer {principal} is not a principal of the recorded authority view {view}"
    )]
    UnauthorizedRevocation {
        /// The revocation's signer.
        principal: Address,
        /// The view's hash, hex.
        view: String,
    },
}

/// The rules a replay applies, from the node's validation settings.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) network: Eip712Network,
    policy: Policy,
    stream_path: String,
    telemetry_roles: Vec<Role>,
}

impl Rules {
    pub(crate) fn new(config: &ValidationConfig) -> Rules {
        Rules {
            network: config.network,
            policy: config.policy(),
            stream_path: config.stream_path.clone(),
            telemetry_roles: config.telemetry_roles.clone(),
        }
    }
}

/// One logged envelope with the context in force at its position.
#[derive(Debug)]
pub(crate) struct EnvelopeJob {
    pub(crate) position: Position,
    pub(crate) bytes: Vec<u8>,
    pub(crate) view: Option<Arc<AuthorityView>>,
    /// The view's hash, computed once per recorded view.
    pub(crate) view_hash: [u8; 32],
    pub(crate) revocations: Arc<Revocations>,
}

/// An envelope that passed every audit check.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) envelope: Envelope,
    pub(crate) batch: TelemetryBatch,
    pub(crate) certificate: Arc<VerifiedDelegation>,
}

/// One worker's checker: the libsecp256k1 context and its own caches (no
/// locks between workers).
pub(crate) struct Checker {
    rules: Arc<Rules>,
    signatures: SignatureChecker,
    certificates: HashMap<[u8; 32], Arc<VerifiedDelegation>>,
    keys: HashMap<Address, DelegateKey>,
}

impl Checker {
    pub(crate) fn new(rules: Arc<Rules>) -> Checker {
        Checker {
            rules,
            signatures: SignatureChecker::new(),
            certificates: HashMap::new(),
            keys: HashMap::new(),
        }
    }

    /// Every audit check of one envelope, cheap ones first.
    pub(crate) fn check(&mut self, job: &EnvelopeJob) -> Result<Checked, RecordProblem> {
        if job.bytes.len() > limits::MAX_ENVELOPE_BYTES {
            return Err(RecordProblem::Oversize(job.bytes.len()));
        }
        let envelope = Envelope::decode(&job.bytes).map_err(RecordProblem::Envelope)?;
        let batch = TelemetryBatch::decode(&envelope.content).map_err(RecordProblem::Batch)?;
        let timestamp_ms = envelope.id.timestamp;
        let cert = self.certificate(&batch.certificate, timestamp_ms / 1000)?;
        let (principal, delegate, role) = (cert.principal(), cert.delegate(), cert.role());
        if delegate != envelope.id.publisher {
            return Err(RecordProblem::WrongDelegate {
                delegate,
                publisher: envelope.id.publisher,
            });
        }
        let stream = &envelope.id.stream_id;
        if stream.strip_prefix(principal.to_hex().as_str()) != Some(self.rules.stream_path.as_str())
        {
            return Err(RecordProblem::WrongStream(stream.clone()));
        }
        if !self.rules.telemetry_roles.contains(&role)
            || (role == Role::Loadtest
                && batch.events.iter().any(|e| e.origin != Some(Origin::Synthetic)))
        {
            return Err(RecordProblem::WrongRole(role.as_str()));
        }
        let view = job.view.as_ref().ok_or(RecordProblem::NoAuthorityView)?;
        if !view.allows(principal, role) {
            return Err(RecordProblem::Unauthorized {
                principal,
                role: role.as_str(),
                view: hex::encode(job.view_hash),
            });
        }
        if let Some(&revoked_at_ms) = job.revocations.get(&(principal, delegate))
            && timestamp_ms >= revoked_at_ms
        {
            return Err(RecordProblem::Revoked { delegate, revoked_at_ms, timestamp_ms });
        }
        self.signature(&envelope)?;
        Ok(Checked { envelope, batch, certificate: cert })
    }

    /// The certificate, verified at `stamp_secs` (cached by its blake3 hash;
    /// a cache hit re-checks only the validity window, as the node does).
    fn certificate(
        &mut self,
        bytes: &[u8],
        stamp_secs: u64,
    ) -> Result<Arc<VerifiedDelegation>, RecordProblem> {
        let key = *blake3::hash(bytes).as_bytes();
        if let Some(cert) = self.certificates.get(&key) {
            cert.check_time(stamp_secs, &self.rules.policy).map_err(RecordProblem::Certificate)?;
            return Ok(Arc::clone(cert));
        }
        let signed = SignedDelegation::decode(bytes)
            .map_err(|e| RecordProblem::CertificateDecode(e.to_string()))?;
        let verified = signed
            .verify(&self.rules.network, stamp_secs, &self.rules.policy)
            .map_err(RecordProblem::Certificate)?;
        if self.certificates.len() >= CACHE_ENTRIES {
            self.certificates.clear();
        }
        let cert = Arc::new(verified);
        self.certificates.insert(key, Arc::clone(&cert));
        Ok(cert)
    }

    /// The envelope signature: the first envelope of a delegate by key
    /// recovery (the signer must be the publisher), later ones against the
    /// recovered key.
    fn signature(&mut self, envelope: &Envelope) -> Result<(), RecordProblem> {
        let publisher = envelope.id.publisher;
        if let Some(key) = self.keys.get(&publisher) {
            return self.signatures.verify(envelope, key).map_err(RecordProblem::Signature);
        }
        let key = self.signatures.recover(envelope).map_err(RecordProblem::Signature)?;
        if self.keys.len() >= CACHE_ENTRIES {
            self.keys.clear();
        }
        self.keys.insert(publisher, key);
        Ok(())
    }
}
