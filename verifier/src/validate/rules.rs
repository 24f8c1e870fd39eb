//! The rules of an envelope and of a revocation that need no state: the
//! one place they are written.
//!
//! Every source of envelopes applies them: gossip and the Streamr bridge
//! through [`super::Pipeline`], `vouch replay` (against the authority view
//! and revocations its log recorded), `vouch envelope verify`, and sync.
//! What differs between sources is only the state they add around these
//! rules (arrival time, duplicates, rate limits, live delegates: the
//! pipeline's guards), never a rule. Failures are [`ValidationError`]s, so
//! every source reports them with the one outcome table.

use std::sync::Arc;

use vouch_delegation::authority::AuthorityView;
use vouch_delegation::{
    CertificateError, Eip712Network, Policy, Role, SignedCheckpoint, SignedDelegation,
    SignedRevocation, VerifiedCheckpoint, VerifiedDelegation, VerifiedRevocation,
};
use vouch_net::PartitionSet;
use vouch_schema::{Address, DecodedBatch, Envelope, Origin, limits};

use super::ValidationConfig;
use super::error::ValidationError;
use super::guards::BoundedMap;
use super::signature::{DelegateKey, SignatureChecker};

/// Largest control-topic message decoded as a revocation (one is under 200 bytes).
pub const MAX_REVOCATION_BYTES: usize = 1024;

/// What a control-topic message is, from its first byte: both are
/// deterministic CBOR maps, a revocation of 7 entries (`0xa7`), a checkpoint
/// of 14 (`0xae`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    /// A principal's revocation of a delegate.
    Revocation,
    /// A verifier's signed checkpoint of a sealed minute.
    Checkpoint,
}

impl ControlKind {
    /// The kind of `bytes` (anything else is decoded, and refused, as a revocation).
    pub fn of(bytes: &[u8]) -> ControlKind {
        match bytes.first() {
            Some(0xae) => ControlKind::Checkpoint,
            _ => ControlKind::Revocation,
        }
    }
}

/// How an envelope reached the verifier, for the structure check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// On a gossip (or bridged) topic: the telemetry partition of that
    /// topic, `None` when it is not a telemetry topic. The envelope's own
    /// partition must be the topic's.
    Topic(Option<u32>),
    /// Fetched from a peer verifier by sync: its partition must be one
    /// this verifier follows.
    Synced(PartitionSet),
    /// Read back from a log or a file: no topic to compare with.
    Stored,
}

/// The settings the rules read, from the node's `[validation]`.
#[derive(Debug, Clone)]
pub struct Rules {
    network: Eip712Network,
    policy: Policy,
    stream_path: String,
    telemetry_roles: Vec<Role>,
}

impl Rules {
    /// The rules `config` describes.
    pub fn new(config: &ValidationConfig) -> Rules {
        Rules {
            network: config.network,
            policy: config.policy(),
            stream_path: config.stream_path.clone(),
            telemetry_roles: config.telemetry_roles.clone(),
        }
    }

    /// The EIP-712 network certificates and revocations must be signed for.
    pub fn network(&self) -> &Eip712Network {
        &self.network
    }

    /// Size, strict decoding of the envelope and its batch, and structure
    /// (the partition of the topic it arrived on).
    pub fn decode(
        &self,
        bytes: &[u8],
        arrival: Arrival,
    ) -> Result<(Envelope, DecodedBatch), ValidationError> {
        if bytes.len() > limits::MAX_ENVELOPE_BYTES {
            return Err(ValidationError::Oversize(bytes.len()));
        }
        let envelope = Envelope::decode(bytes).map_err(ValidationError::Envelope)?;
        self.admit(envelope, arrival)
    }

    /// The structure check (the partition it arrived on) and the strict
    /// decoding of its batch, for an envelope decoded already.
    pub fn admit(
        &self,
        envelope: Envelope,
        arrival: Arrival,
    ) -> Result<(Envelope, DecodedBatch), ValidationError> {
        match arrival {
            Arrival::Topic(topic) => {
                let topic = topic.ok_or(ValidationError::Structure("not a telemetry topic"))?;
                if envelope.id.partition != topic {
                    return Err(ValidationError::WrongPartition {
                        envelope: envelope.id.partition,
                        topic,
                    });
                }
            }
            Arrival::Synced(followed) if !followed.contains(envelope.id.partition) => {
                return Err(ValidationError::Structure(
                    "a partition this verifier does not follow",
                ));
            }
            Arrival::Synced(_) | Arrival::Stored => {}
        }
        let batch = DecodedBatch::decode(&envelope.content).map_err(ValidationError::Batch)?;
        Ok((envelope, batch))
    }

    /// The certificate binds the envelope: it delegates the envelope's
    /// publisher, the stream is its principal's, its role may publish
    /// telemetry, and a load test publishes only synthetic events (its own
    /// track).
    pub fn bind(
        &self,
        envelope: &Envelope,
        batch: &DecodedBatch,
        cert: &VerifiedDelegation,
    ) -> Result<(), ValidationError> {
        if cert.delegate() != envelope.id.publisher {
            return Err(ValidationError::WrongDelegate {
                delegate: cert.delegate(),
                publisher: envelope.id.publisher,
            });
        }
        let stream = &envelope.id.stream_id;
        if stream.strip_prefix(cert.principal().to_hex().as_str())
            != Some(self.stream_path.as_str())
        {
            return Err(ValidationError::WrongStream { stream_id: stream.clone() });
        }
        let role = cert.role();
        if !self.telemetry_roles.contains(&role)
            || (role == Role::Loadtest
                && batch.events().any(|e| e.origin != Some(Origin::Synthetic)))
        {
            return Err(ValidationError::WrongRole(role));
        }
        Ok(())
    }

    /// The principal holds the standing its role needs in `view`.
    pub fn authorize(
        view: &AuthorityView,
        cert: &VerifiedDelegation,
    ) -> Result<(), ValidationError> {
        if view.allows(cert.principal(), cert.role()) {
            Ok(())
        } else {
            Err(ValidationError::Unauthorized { principal: cert.principal(), role: cert.role() })
        }
    }

    /// A revocation of the envelope's delegate, in force from
    /// `revoked_at_ms`, covers an envelope stamped at or after it.
    pub fn not_revoked(
        envelope: &Envelope,
        revoked_at_ms: Option<u64>,
    ) -> Result<(), ValidationError> {
        match revoked_at_ms {
            Some(at) if envelope.id.timestamp >= at => Err(ValidationError::Revoked {
                delegate: envelope.id.publisher,
                revoked_at_ms: at,
                timestamp_ms: envelope.id.timestamp,
            }),
            _ => Ok(()),
        }
    }

    /// A revocation message: size, strict decoding, EIP-712 signature for
    /// this network.
    pub fn revocation(&self, bytes: &[u8]) -> Result<VerifiedRevocation, ValidationError> {
        if bytes.len() > MAX_REVOCATION_BYTES {
            return Err(ValidationError::Oversize(bytes.len()));
        }
        let signed =
            SignedRevocation::decode(bytes).map_err(ValidationError::MalformedRevocation)?;
        signed.verify(&self.network).map_err(ValidationError::RevocationSignature)
    }

    /// A checkpoint message: strict decoding, its verifier-role certificate
    /// (for this network, under this policy, valid at the minute's end) and
    /// its signature.
    pub fn checkpoint(&self, bytes: &[u8]) -> Result<VerifiedCheckpoint, ValidationError> {
        let signed =
            SignedCheckpoint::decode(bytes).map_err(ValidationError::MalformedCheckpoint)?;
        signed.verify(&self.network, &self.policy).map_err(ValidationError::BadCheckpoint)
    }

    /// Only principals with verifier standing in `view` sign checkpoints.
    pub fn checkpointer(
        view: &AuthorityView,
        c: &VerifiedCheckpoint,
    ) -> Result<(), ValidationError> {
        if view.allows(c.verifier(), Role::Verifier) {
            Ok(())
        } else {
            Err(ValidationError::NotAVerifier(c.verifier()))
        }
    }

    /// Only principals of `view` (any role) may revoke.
    pub fn revoker(view: &AuthorityView, r: &VerifiedRevocation) -> Result<(), ValidationError> {
        if view.is_principal(r.principal()) {
            Ok(())
        } else {
            Err(ValidationError::NotAPrincipal(r.principal()))
        }
    }
}

/// Certificates and delegate keys, verified once and then cached (both
/// caches bounded): the expensive rules.
pub struct Credentials {
    certificates: BoundedMap<[u8; 32], Arc<VerifiedDelegation>>,
    keys: BoundedMap<Address, DelegateKey>,
    signatures: SignatureChecker,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("certificates", &self.certificates.len())
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Entries a cache of [`Credentials`] dropped to make room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evicted {
    /// Verified certificates.
    pub certificates: u64,
    /// Delegate keys.
    pub keys: u64,
}

impl Credentials {
    /// Empty caches of at most `certificates` and `keys` entries.
    pub fn new(certificates: usize, keys: usize) -> Credentials {
        Credentials {
            certificates: BoundedMap::new(certificates),
            keys: BoundedMap::new(keys),
            signatures: SignatureChecker::new(),
        }
    }

    /// Cached certificates.
    pub fn certificates(&self) -> usize {
        self.certificates.len()
    }

    /// Cached delegate keys.
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// The batch's certificate, verified for this network and policy and
    /// valid at the envelope's stamp (a cache hit re-checks only the
    /// validity window). Cached by the blake3 hash of its bytes.
    pub fn certificate(
        &mut self,
        rules: &Rules,
        envelope: &Envelope,
        batch: &DecodedBatch,
        evicted: &mut Evicted,
    ) -> Result<Arc<VerifiedDelegation>, ValidationError> {
        let stamp_secs = envelope.id.timestamp / 1000;
        let key = *blake3::hash(batch.certificate()).as_bytes();
        if let Some(cert) = self.certificates.get_mut(&key) {
            let cert = Arc::clone(cert);
            cert.check_time(stamp_secs, &rules.policy).map_err(certificate_error)?;
            return Ok(cert);
        }
        let signed = SignedDelegation::decode(batch.certificate())
            .map_err(ValidationError::CertificateDecode)?;
        let verified =
            signed.verify(&rules.network, stamp_secs, &rules.policy).map_err(certificate_error)?;
        let cert = Arc::new(verified);
        evicted.certificates += self.certificates.insert(key, Arc::clone(&cert));
        Ok(cert)
    }

    /// The envelope signature over its signing hash `digest`
    /// ([`Envelope::signing_hash`]): the first envelope of a delegate by key
    /// recovery (the signer must be the publisher), later ones against the
    /// recovered key.
    pub fn signature(
        &mut self,
        envelope: &Envelope,
        digest: [u8; 32],
        evicted: &mut Evicted,
    ) -> Result<(), ValidationError> {
        let publisher = envelope.id.publisher;
        if let Some(key) = self.keys.get_mut(&publisher) {
            return self
                .signatures
                .verify(envelope, digest, key)
                .map_err(ValidationError::BadSignature);
        }
        let key =
            self.signatures.recover(envelope, digest).map_err(ValidationError::BadSignature)?;
        evicted.keys += self.keys.insert(publisher, key);
        Ok(())
    }

    /// Every stateless rule of one envelope, in order — decode, certificate
    /// at the envelope's stamp, binding, standing in `view`, revocation
    /// (`revoked_at(principal, delegate)`), signature — for a source that
    /// adds no state of its own (`vouch replay`, `vouch envelope verify`).
    /// Without a `view` the standing is not checked.
    pub fn check(
        &mut self,
        rules: &Rules,
        bytes: &[u8],
        arrival: Arrival,
        view: Option<&AuthorityView>,
        revoked_at: impl FnOnce(Address, Address) -> Option<u64>,
    ) -> Result<Checked, ValidationError> {
        let mut evicted = Evicted::default();
        let (envelope, batch) = rules.decode(bytes, arrival)?;
        let certificate = self.certificate(rules, &envelope, &batch, &mut evicted)?;
        rules.bind(&envelope, &batch, &certificate)?;
        if let Some(view) = view {
            Rules::authorize(view, &certificate)?;
        }
        Rules::not_revoked(&envelope, revoked_at(certificate.principal(), certificate.delegate()))?;
        self.signature(&envelope, envelope.signing_hash(), &mut evicted)?;
        Ok(Checked { envelope, batch, certificate })
    }
}

/// An envelope every stateless rule accepted.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The envelope.
    pub envelope: Envelope,
    /// Its batch.
    pub batch: DecodedBatch,
    /// Its verified certificate.
    pub certificate: Arc<VerifiedDelegation>,
}

fn certificate_error(e: CertificateError) -> ValidationError {
    match e {
        CertificateError::Expired { .. } => ValidationError::ExpiredCertificate(e),
        other => ValidationError::BadCertificate(other),
    }
}
