//! The audit checks of one logged envelope, against the authority view and
//! revocations the log recorded before it.
//!
//! The rules are the node's own ([`crate::validate::rules`]): strict
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
use vouch_schema::{Address, SharedError};

use crate::store::Position;
use crate::validate::ValidationError;
use crate::validate::rules::{Arrival, Checked, Credentials, Rules};

/// Entries each worker caches (verified certificates, delegate keys); the
/// least recently used make room, which only costs re-verification.
const CACHE_ENTRIES: usize = 16_384;

/// Revocations in force: (principal, delegate) → revoked at, ms.
pub(crate) type Revocations = HashMap<(Address, Address), u64>;

/// What is wrong with one record. Messages are stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordProblem {
    /// The frame or its segment header fails the hash chain or format checks.
    #[error("{0}")]
    Chain(crate::store::Problem),
    /// The envelope breaks a rule of the validation pipeline (the outcome
    /// table's reason is `.outcome()` of the error).
    #[error("{0}")]
    Envelope(Box<ValidationError>),
    /// No authority view was recorded before this record (and none was given).
    #[error("no authority view recorded before this record")]
    NoAuthorityView,
    /// A recorded authority view does not decode.
    #[error("recorded authority view does not decode: {0}")]
    BadView(#[source] SharedError<serde_json::Error>),
    /// A recorded revocation does not decode or verify.
    #[error("recorded revocation does not verify: {0}")]
    BadRevocation(Box<ValidationError>),
    /// A recorded checkpoint does not decode or verify, or a peer's signer
    /// is not a verifier of the recorded view.
    #[error("recorded checkpoint: {0}")]
    BadCheckpoint(Box<ValidationError>),
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

/// One logged envelope with the context in force at its position.
#[derive(Debug)]
pub(crate) struct EnvelopeJob {
    pub(crate) position: Position,
    pub(crate) bytes: Vec<u8>,
    pub(crate) view: Option<Arc<AuthorityView>>,
    pub(crate) revocations: Arc<Revocations>,
}

/// One worker's checker: the node's rules with its own credential caches
/// (no locks between workers).
pub(crate) struct Checker {
    rules: Arc<Rules>,
    credentials: Credentials,
}

impl Checker {
    pub(crate) fn new(rules: Arc<Rules>) -> Checker {
        Checker { rules, credentials: Credentials::new(CACHE_ENTRIES, CACHE_ENTRIES) }
    }

    /// Every rule of one envelope under the view and revocations recorded before it.
    pub(crate) fn check(&mut self, job: &EnvelopeJob) -> Result<Checked, RecordProblem> {
        let view = job.view.as_deref().ok_or(RecordProblem::NoAuthorityView)?;
        self.credentials
            .check(&self.rules, &job.bytes, Arrival::Stored, Some(view), |principal, delegate| {
                job.revocations.get(&(principal, delegate)).copied()
            })
            .map_err(|e| RecordProblem::Envelope(Box::new(e)))
    }
}
