//! Do the verifier's authority and Streamr's on-chain permissions agree?
//!
//! Vouch accepts a delegate's envelopes while its certificate is valid, its
//! principal holds the certificate's role in the authority view, and no
//! revocation withdrew it. A Streamr subscriber accepts the same messages
//! while the delegate holds PUBLISH on `0x<principal>/livepeer/telemetry` in
//! the StreamRegistry. [`check`] puts both side by side for every delegate
//! the verifier knows: from its log ([`Known::from_log`]: the certificates
//! carried by accepted envelopes, the revocations and the last authority view
//! it recorded) and from certificate and revocation files. With a start
//! block, it also lists on-chain publishers Vouch knows nothing of.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use vouch_delegation::authority::AuthorityView;
use vouch_delegation::authority::onchain::OnChainError;
use vouch_delegation::stream_registry::{self, Permissions};
use vouch_delegation::{Eip712Network, Policy, SignedDelegation, SignedRevocation};
use vouch_schema::{Address, Envelope, TelemetryBatch};

use crate::store::{LogReader, RecordKind};
use crate::validate::rules::Rules;

use super::BridgeError;

/// What the verifier knows about delegates.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Certificates seen, each once.
    pub certificates: Vec<SignedDelegation>,
    /// Revocations seen.
    pub revocations: Vec<SignedRevocation>,
    /// The authority view in force (the last one a log recorded).
    pub view: Option<AuthorityView>,
}

impl Known {
    /// Reads a verifier's log: certificates from accepted envelopes,
    /// revocations, and the last authority view recorded.
    pub fn from_log(dir: &Path) -> Result<Known, BridgeError> {
        let mut known = Known::default();
        let mut seen_certs = BTreeSet::new();
        let mut reader = LogReader::open(dir, 0)?;
        for record in reader.by_ref() {
            let record = record?;
            let index = record.position.index;
            let bad = |what: &str, e: &dyn std::fmt::Display| {
                BridgeError::Log(format!("record {index}: {what}: {e}"))
            };
            match record.kind {
                RecordKind::Envelope => {
                    let envelope =
                        Envelope::decode(&record.payload).map_err(|e| bad("envelope", &e))?;
                    let batch =
                        TelemetryBatch::decode(&envelope.content).map_err(|e| bad("batch", &e))?;
                    if seen_certs.insert(*blake3::hash(&batch.certificate).as_bytes()) {
                        known.certificates.push(
                            SignedDelegation::decode(&batch.certificate)
                                .map_err(|e| bad("certificate", &e))?,
                        );
                    }
                }
                RecordKind::Revocation => known.revocations.push(
                    SignedRevocation::decode(&record.payload).map_err(|e| bad("revocation", &e))?,
                ),
                RecordKind::AuthorityView => {
                    known.view = Some(
                        serde_json::from_slice(&record.payload)
                            .map_err(|e| bad("authority view", &e))?,
                    );
                }
                RecordKind::Scores | RecordKind::Checkpoint | RecordKind::PeerCheckpoint => {}
            }
        }
        Ok(known)
    }
}

/// How the check reads the chain and judges certificates.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// JSON-RPC endpoint of the registry's chain.
    pub rpc: String,
    /// The StreamRegistry.
    pub registry: Address,
    /// The stream path after `0x<principal>`.
    pub path: String,
    /// The EIP-712 domain certificates must be signed for.
    pub network: Eip712Network,
    /// Certificate policy (lifetime, clock skew).
    pub policy: Policy,
    /// The time judged, Unix seconds.
    pub now: u64,
    /// Scan `PermissionUpdated` logs from this block for unknown publishers.
    pub from_block: Option<u64>,
    /// Deadline of each chain read.
    pub timeout: Duration,
}

/// One delegate, seen from both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DelegateCheck {
    /// The delegate key's address.
    pub delegate: Address,
    /// `accepts`, or why Vouch refuses it.
    pub vouch: String,
    /// Whether the registry lets it publish now.
    pub streamr_publish: bool,
    /// Its own grant's `publishExpiration` (Unix seconds; 0 for none).
    pub publish_expiration: u64,
    /// The latest `notAfter` of its certificates.
    pub not_after: u64,
    /// Whether both sides say the same.
    pub agree: bool,
}

/// One principal's stream, seen from both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamCheck {
    /// `0x<principal><path>`.
    pub stream_id: String,
    /// The principal.
    pub principal: Address,
    /// Whether the stream exists on chain.
    pub exists: bool,
    /// Whether anyone at all may publish (a public PUBLISH grant).
    pub public_publish: bool,
    /// Every known delegate of the principal.
    pub delegates: Vec<DelegateCheck>,
    /// Addresses with PUBLISH on chain that Vouch knows no certificate for
    /// (the principal itself left out), from the scanned logs.
    pub unknown_publishers: Vec<Address>,
}

impl StreamCheck {
    /// Whether the two sides agree on this stream.
    pub fn agrees(&self) -> bool {
        self.exists
            && !self.public_publish
            && self.unknown_publishers.is_empty()
            && self.delegates.iter().all(|d| d.agree)
    }
}

/// Vouch's verdict on a delegate: `accepts`, or the first reason it refuses.
fn vouch_verdict(
    certs: &[&SignedDelegation],
    revoked: bool,
    view: Option<&AuthorityView>,
    opts: &CheckOptions,
) -> String {
    if revoked {
        return "revoked".to_owned();
    }
    let mut reason = String::from("no certificate");
    for cert in certs {
        match cert.verify(&opts.network, opts.now, &opts.policy) {
            Err(e) => reason = format!("certificate: {e}"),
            // The same authority rule as the validation pipeline's.
            Ok(v) => match view.map(|view| (Rules::authorize(view, &v), view)) {
                Some((Err(e), view)) => reason = format!("{e} ({})", view.source),
                _ => return "accepts".to_owned(),
            },
        }
    }
    reason
}

/// Compares what the verifier knows with the registry, one stream per
/// principal with a known certificate.
pub async fn check(known: &Known, opts: &CheckOptions) -> Result<Vec<StreamCheck>, OnChainError> {
    let mut by_principal: BTreeMap<Address, BTreeMap<Address, Vec<&SignedDelegation>>> =
        BTreeMap::new();
    for cert in &known.certificates {
        by_principal
            .entry(cert.principal)
            .or_default()
            .entry(cert.delegate)
            .or_default()
            .push(cert);
    }
    for r in &known.revocations {
        by_principal.entry(r.principal).or_default().entry(r.delegate).or_default();
    }
    let revoked: BTreeSet<(Address, Address)> = known
        .revocations
        .iter()
        .filter(|r| r.verify(&opts.network).is_ok())
        .map(|r| (r.principal, r.delegate))
        .collect();
    let mut out = Vec::new();
    for (principal, delegates) in by_principal {
        let stream_id = stream_registry::stream_id(principal, &opts.path);
        let mut checks = Vec::new();
        let mut public_publish = false;
        let mut exists = true;
        for (delegate, certs) in &delegates {
            let p: Permissions = stream_registry::read_permissions(
                &opts.rpc,
                opts.registry,
                &stream_id,
                *delegate,
                opts.timeout,
            )
            .await?;
            exists = p.stream_exists;
            public_publish = p.public_publish_expiration >= opts.now && p.stream_exists;
            let vouch = vouch_verdict(
                certs,
                revoked.contains(&(principal, *delegate)),
                known.view.as_ref(),
                opts,
            );
            let streamr_publish = p.can_publish(opts.now);
            checks.push(DelegateCheck {
                delegate: *delegate,
                agree: (vouch == "accepts") == streamr_publish,
                vouch,
                streamr_publish,
                publish_expiration: p.publish_expiration,
                not_after: certs.iter().map(|c| c.not_after).max().unwrap_or(0),
            });
        }
        let mut unknown_publishers = Vec::new();
        if let Some(from) = opts.from_block {
            let on_chain = stream_registry::publishers(
                &opts.rpc,
                opts.registry,
                &stream_id,
                from,
                opts.timeout,
            )
            .await?;
            unknown_publishers = on_chain
                .into_iter()
                .filter(|(user, expiration)| {
                    *expiration >= opts.now
                        && *user != principal
                        && *user != Address::ZERO
                        && !delegates.contains_key(user)
                })
                .map(|(user, _)| user)
                .collect();
        }
        out.push(StreamCheck {
            stream_id,
            principal,
            exists,
            public_publish,
            delegates: checks,
            unknown_publishers,
        });
    }
    Ok(out)
}
