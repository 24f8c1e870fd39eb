//! Delegation certificates: issue, encode, decode, verify.
//!
//! A [`SignedDelegation`] is what travels: the EIP-712 [`Delegation`] fields,
//! the network they were signed for, and the principal's 65-byte signature.
//! Only [`SignedDelegation::verify`] makes a [`VerifiedDelegation`], so code
//! that takes the latter can rely on the checks having run.
//!
//! Wire encoding, a deterministic CBOR map:
//!
//! | key | field | type |
//! |---|---|---|
//! | 0 | version | uint (1) |
//! | 1 | chain_id | uint |
//! | 2 | verifying_contract | bytes(20) |
//! | 3 | principal | bytes(20) |
//! | 4 | delegate | bytes(20) |
//! | 5 | role | uint (0–4) |
//! | 6 | region | text (≤ 64 bytes) |
//! | 7 | not_before | uint (Unix seconds) |
//! | 8 | not_after | uint (Unix seconds) |
//! | 9 | nonce | uint |
//! | 10 | signature | bytes(65), r ‖ s ‖ v |

use ciborium::Value;
use k256::ecdsa::SigningKey;
use vouch_schema::crypto::address_of;
use vouch_schema::{Address, Signature, SignatureError, cbor};

use crate::Role;
use crate::eip712::{self, Delegation, Eip712Network};
use crate::wire::{DecodeError, Fields, MAX_REGION_BYTES, WIRE_VERSION, int_map, uint};

/// Verifier-side bounds on certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Longest accepted `notAfter - notBefore`, in seconds.
    pub max_lifetime_secs: u64,
    /// How far a verifier's clock may lag the issuer's: a certificate is
    /// accepted this many seconds before its `notBefore`. Expiry gets no grace.
    pub clock_skew_secs: u64,
}

impl Policy {
    /// 90 days.
    pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 90 * 24 * 60 * 60;
    /// 5 minutes.
    pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 300;
}

impl Default for Policy {
    /// A 90-day maximum lifetime and 5 minutes of clock skew.
    fn default() -> Self {
        Policy {
            max_lifetime_secs: Self::DEFAULT_MAX_LIFETIME_SECS,
            clock_skew_secs: Self::DEFAULT_CLOCK_SKEW_SECS,
        }
    }
}

/// Why a certificate or revocation is not accepted (or cannot be issued).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// Signed for another chain or contract than the verifier's network.
    #[error("signed for {actual}, but this network is {expected}")]
    WrongNetwork {
        /// The verifier's network.
        expected: Eip712Network,
        /// The network in the certificate.
        actual: Eip712Network,
    },
    /// The signature bytes are malformed (bad `v`, bad scalar, unrecoverable).
    #[error("malformed signature: {0}")]
    BadSignature(#[source] SignatureError),
    /// The signature is valid but was not made by the principal.
    #[error("signed by {signer}, not by its principal {principal}")]
    WrongSigner {
        /// The principal the certificate names.
        principal: Address,
        /// The address that actually signed.
        signer: Address,
    },
    /// `notBefore` is still in the future.
    #[error("not valid until {not_before} (now {now})")]
    NotYetValid {
        /// The certificate's `notBefore`.
        not_before: u64,
        /// The verifier's time.
        now: u64,
    },
    /// `notAfter` has passed.
    #[error("expired at {not_after} (now {now})")]
    Expired {
        /// The certificate's `notAfter`.
        not_after: u64,
        /// The verifier's time.
        now: u64,
    },
    /// `notAfter` is not later than `notBefore`.
    #[error("notAfter {not_after} is not later than notBefore {not_before}")]
    EmptyWindow {
        /// The certificate's `notBefore`.
        not_before: u64,
        /// The certificate's `notAfter`.
        not_after: u64,
    },
    /// The validity window is longer than the policy allows.
    #[error("lifetime of {lifetime_secs} s exceeds the policy maximum of {max_secs} s")]
    LifetimeTooLong {
        /// `notAfter - notBefore`.
        lifetime_secs: u64,
        /// [`Policy::max_lifetime_secs`].
        max_secs: u64,
    },
    /// `region` is longer than 64 bytes.
    #[error("region is {0} bytes, over the 64-byte limit")]
    RegionTooLong(usize),
}

/// What a principal grants: everything in a certificate except who signs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationTerms {
    /// The hot key being authorized.
    pub delegate: Address,
    /// What it may publish as.
    pub role: Role,
    /// The principal's declared region for the delegate's box (≤ 64 bytes).
    pub region: String,
    /// First second of validity (Unix seconds, inclusive).
    pub not_before: u64,
    /// End of validity (Unix seconds, exclusive).
    pub not_after: u64,
    /// Distinguishes certificates with otherwise equal fields.
    pub nonce: u64,
}

/// A delegation certificate as it travels: signed, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDelegation {
    /// The chain and contract of the EIP-712 domain it was signed under.
    pub network: Eip712Network,
    /// The principal's on-chain address, who must have signed.
    pub principal: Address,
    /// The hot key being authorized.
    pub delegate: Address,
    /// What the delegate may publish as.
    pub role: Role,
    /// The principal's declared region for the delegate's box (≤ 64 bytes).
    pub region: String,
    /// First second of validity (Unix seconds, inclusive).
    pub not_before: u64,
    /// End of validity (Unix seconds, exclusive).
    pub not_after: u64,
    /// Distinguishes certificates with otherwise equal fields.
    pub nonce: u64,
    /// The principal's EIP-712 signature, r ‖ s ‖ v.
    pub signature: Signature,
}

const FIELDS: &[(u64, &str)] = &[
    (0, "version"),
    (1, "chain_id"),
    (2, "verifying_contract"),
    (3, "principal"),
    (4, "delegate"),
    (5, "role"),
    (6, "region"),
    (7, "not_before"),
    (8, "not_after"),
    (9, "nonce"),
    (10, "signature"),
];

impl SignedDelegation {
    /// Signs `terms` with the principal's key for `network`. Fails only on
    /// terms no verifier would accept whatever its policy: an over-long region
    /// or an empty validity window.
    pub fn issue(
        principal_key: &SigningKey,
        network: Eip712Network,
        terms: DelegationTerms,
    ) -> Result<SignedDelegation, CertificateError> {
        check_terms(&terms.region, terms.not_before, terms.not_after)?;
        let mut cert = SignedDelegation {
            network,
            principal: address_of(principal_key.verifying_key()),
            delegate: terms.delegate,
            role: terms.role,
            region: terms.region,
            not_before: terms.not_before,
            not_after: terms.not_after,
            nonce: terms.nonce,
            signature: Signature([0; 65]),
        };
        cert.signature = Signature::sign_prehash(principal_key, &cert.signing_hash());
        Ok(cert)
    }

    /// The certificate's terms, without principal, network and signature.
    pub fn terms(&self) -> DelegationTerms {
        DelegationTerms {
            delegate: self.delegate,
            role: self.role,
            region: self.region.clone(),
            not_before: self.not_before,
            not_after: self.not_after,
            nonce: self.nonce,
        }
    }

    /// The EIP-712 struct that is signed.
    pub fn typed_data(&self) -> Delegation {
        Delegation {
            principal: eip712::to_alloy(self.principal),
            delegate: eip712::to_alloy(self.delegate),
            role: self.role as u8,
            region: self.region.clone(),
            notBefore: self.not_before,
            notAfter: self.not_after,
            nonce: self.nonce,
        }
    }

    /// The EIP-712 signing hash, what `eth_signTypedData_v4` signs.
    pub fn signing_hash(&self) -> [u8; 32] {
        eip712::signing_hash(&self.typed_data(), &self.network)
    }

    /// The deterministic CBOR wire encoding (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        cbor::to_vec(&int_map(vec![
            (0, uint(WIRE_VERSION)),
            (1, uint(self.network.chain_id)),
            (2, Value::Bytes(self.network.verifying_contract.0.to_vec())),
            (3, Value::Bytes(self.principal.0.to_vec())),
            (4, Value::Bytes(self.delegate.0.to_vec())),
            (5, uint(u64::from(self.role as u8))),
            (6, Value::Text(self.region.clone())),
            (7, uint(self.not_before)),
            (8, uint(self.not_after)),
            (9, uint(self.nonce)),
            (10, Value::Bytes(self.signature.0.to_vec())),
        ]))
    }

    /// Decodes the wire encoding strictly: exactly the deterministic encoding
    /// of a version-1 certificate, every key present, nothing else.
    pub fn decode(bytes: &[u8]) -> Result<SignedDelegation, DecodeError> {
        let mut f = Fields::decode(bytes, FIELDS)?;
        let chain_id = f.uint(1)?;
        let verifying_contract = Address(f.bytes(2)?);
        let principal = Address(f.bytes(3)?);
        let delegate = Address(f.bytes(4)?);
        let role_n = f.uint(5)?;
        let role = u8::try_from(role_n)
            .ok()
            .and_then(|n| Role::from_u8(n).ok())
            .ok_or(DecodeError::BadRole(role_n))?;
        let region = f.text(6)?;
        if region.len() > MAX_REGION_BYTES {
            return Err(DecodeError::RegionTooLong(region.len()));
        }
        Ok(SignedDelegation {
            network: Eip712Network { chain_id, verifying_contract },
            principal,
            delegate,
            role,
            region,
            not_before: f.uint(7)?,
            not_after: f.uint(8)?,
            nonce: f.uint(9)?,
            signature: Signature(f.bytes(10)?),
        })
    }

    /// blake3 of the wire encoding: the id verifiers cache verified
    /// certificates by. Decoding is strict, so it is also blake3 of the bytes
    /// a certificate was decoded from.
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(&self.encode()).as_bytes()
    }

    /// Checks the certificate for `expected_network` at `now_secs` (Unix
    /// seconds) under `policy`: the domain, the window's shape and length, the
    /// time, then that the principal signed it.
    pub fn verify(
        &self,
        expected_network: &Eip712Network,
        now_secs: u64,
        policy: &Policy,
    ) -> Result<VerifiedDelegation, CertificateError> {
        check_network(expected_network, &self.network)?;
        check_terms(&self.region, self.not_before, self.not_after)?;
        let lifetime_secs = self.not_after - self.not_before;
        if lifetime_secs > policy.max_lifetime_secs {
            return Err(CertificateError::LifetimeTooLong {
                lifetime_secs,
                max_secs: policy.max_lifetime_secs,
            });
        }
        check_window(self.not_before, self.not_after, now_secs, policy)?;
        check_signer(&self.signature, &self.signing_hash(), self.principal)?;
        Ok(VerifiedDelegation { hash: self.hash(), cert: self.clone() })
    }
}

fn check_terms(region: &str, not_before: u64, not_after: u64) -> Result<(), CertificateError> {
    if region.len() > MAX_REGION_BYTES {
        return Err(CertificateError::RegionTooLong(region.len()));
    }
    if not_after <= not_before {
        return Err(CertificateError::EmptyWindow { not_before, not_after });
    }
    Ok(())
}

fn check_window(
    not_before: u64,
    not_after: u64,
    now: u64,
    policy: &Policy,
) -> Result<(), CertificateError> {
    if now.saturating_add(policy.clock_skew_secs) < not_before {
        return Err(CertificateError::NotYetValid { not_before, now });
    }
    if now >= not_after {
        return Err(CertificateError::Expired { not_after, now });
    }
    Ok(())
}

pub(crate) fn check_network(
    expected: &Eip712Network,
    actual: &Eip712Network,
) -> Result<(), CertificateError> {
    if expected == actual {
        Ok(())
    } else {
        Err(CertificateError::WrongNetwork { expected: *expected, actual: *actual })
    }
}

pub(crate) fn check_signer(
    signature: &Signature,
    digest: &[u8; 32],
    principal: Address,
) -> Result<(), CertificateError> {
    let signer = signature.recover_address(digest).map_err(CertificateError::BadSignature)?;
    if signer == principal {
        Ok(())
    } else {
        Err(CertificateError::WrongSigner { principal, signer })
    }
}

/// A certificate that passed [`SignedDelegation::verify`]. Only this crate
/// makes one, so holding it proves the checks ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDelegation {
    cert: SignedDelegation,
    hash: [u8; 32],
}

impl VerifiedDelegation {
    /// The certificate as signed.
    pub fn certificate(&self) -> &SignedDelegation {
        &self.cert
    }

    /// The network it was verified for.
    pub fn network(&self) -> Eip712Network {
        self.cert.network
    }

    /// The principal that signed it.
    pub fn principal(&self) -> Address {
        self.cert.principal
    }

    /// The delegate's address: the key whose envelopes it authorizes.
    pub fn delegate(&self) -> Address {
        self.cert.delegate
    }

    /// What the delegate may publish as.
    pub fn role(&self) -> Role {
        self.cert.role
    }

    /// The principal's declared region for the delegate's box.
    pub fn region(&self) -> &str {
        &self.cert.region
    }

    /// First second of validity (Unix seconds, inclusive).
    pub fn not_before(&self) -> u64 {
        self.cert.not_before
    }

    /// End of validity (Unix seconds, exclusive).
    pub fn not_after(&self) -> u64 {
        self.cert.not_after
    }

    /// The certificate's nonce.
    pub fn nonce(&self) -> u64 {
        self.cert.nonce
    }

    /// blake3 of the wire encoding ([`SignedDelegation::hash`]), computed once.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// Re-checks only the validity window at `now_secs`: what a verifier
    /// does for a certificate it found in its cache.
    pub fn check_time(&self, now_secs: u64, policy: &Policy) -> Result<(), CertificateError> {
        check_window(self.cert.not_before, self.cert.not_after, now_secs, policy)
    }

    /// The certificate as signed, by value.
    pub fn into_certificate(self) -> SignedDelegation {
        self.cert
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        let mut k = [0u8; 32];
        k[31] = n;
        SigningKey::from_bytes(&k.into()).unwrap()
    }

    const T0: u64 = 1_700_000_000;
    const DAY: u64 = 86_400;

    fn terms() -> DelegationTerms {
        DelegationTerms {
            delegate: address_of(key(2).verifying_key()),
            role: Role::Gateway,
            region: "eu-west".into(),
            not_before: T0,
            not_after: T0 + 30 * DAY,
            nonce: 7,
        }
    }

    fn issued() -> SignedDelegation {
        SignedDelegation::issue(&key(1), Eip712Network::arbitrum_one(), terms()).unwrap()
    }

    fn net() -> Eip712Network {
        Eip712Network::arbitrum_one()
    }

    #[test]
    fn issue_encode_decode_verify() {
        let cert = issued();
        assert_eq!(cert.principal.to_string(), "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf");
        assert_eq!(cert.terms(), terms());
        let bytes = cert.encode();
        assert!(bytes.len() < 300, "{}", bytes.len());
        let back = SignedDelegation::decode(&bytes).unwrap();
        assert_eq!(back, cert);
        assert_eq!(back.hash(), *blake3::hash(&bytes).as_bytes());
        let v = back.verify(&net(), T0 + DAY, &Policy::default()).unwrap();
        assert_eq!(v.principal(), cert.principal);
        assert_eq!(v.delegate(), cert.delegate);
        assert_eq!(v.role(), Role::Gateway);
        assert_eq!(v.region(), "eu-west");
        assert_eq!((v.not_before(), v.not_after(), v.nonce()), (T0, T0 + 30 * DAY, 7));
        assert_eq!(v.network(), net());
        assert_eq!(v.hash(), cert.hash());
        assert_eq!(v.certificate(), &cert);
        assert_eq!(v.clone().into_certificate(), cert);
    }

    #[test]
    fn wrong_network() {
        let other = Eip712Network { chain_id: 1337, ..net() };
        assert_eq!(
            issued().verify(&other, T0, &Policy::default()),
            Err(CertificateError::WrongNetwork { expected: other, actual: net() })
        );
    }

    #[test]
    fn wrong_signer_and_bad_signature() {
        let mut cert = issued();
        cert.nonce = 8;
        assert!(matches!(
            cert.verify(&net(), T0, &Policy::default()),
            Err(CertificateError::WrongSigner { principal, .. }) if principal == cert.principal
        ));
        let mut cert = issued();
        cert.signature.0[64] = 30;
        assert_eq!(
            cert.verify(&net(), T0, &Policy::default()),
            Err(CertificateError::BadSignature(SignatureError::BadV(30)))
        );
        // Signed by someone else entirely.
        // Claims key 1 as principal, signed by key 3.
        let mut forged = issued();
        forged.signature = Signature::sign_prehash(&key(3), &forged.signing_hash());
        let err = forged.verify(&net(), T0, &Policy::default()).unwrap_err();
        assert_eq!(
            err,
            CertificateError::WrongSigner {
                principal: forged.principal,
                signer: address_of(key(3).verifying_key())
            }
        );
        assert!(err.to_string().starts_with("signed by 0x"));
    }

    #[test]
    fn time_window() {
        let p = Policy::default();
        let cert = issued();
        assert_eq!(
            cert.verify(&net(), T0 - 301, &p),
            Err(CertificateError::NotYetValid { not_before: T0, now: T0 - 301 })
        );
        // Within the clock skew grace.
        assert!(cert.verify(&net(), T0 - 300, &p).is_ok());
        assert_eq!(
            cert.verify(&net(), T0 + 30 * DAY, &p),
            Err(CertificateError::Expired { not_after: T0 + 30 * DAY, now: T0 + 30 * DAY })
        );
        let v = cert.verify(&net(), T0, &p).unwrap();
        assert!(v.check_time(T0 + 30 * DAY - 1, &p).is_ok());
        assert!(matches!(v.check_time(u64::MAX, &p), Err(CertificateError::Expired { .. })));
    }

    #[test]
    fn window_shape_and_lifetime() {
        let mut t = terms();
        t.not_after = t.not_before;
        assert_eq!(
            SignedDelegation::issue(&key(1), net(), t),
            Err(CertificateError::EmptyWindow { not_before: T0, not_after: T0 })
        );
        let mut cert = issued();
        cert.not_after = T0 - 1;
        assert_eq!(
            cert.verify(&net(), T0, &Policy::default()),
            Err(CertificateError::EmptyWindow { not_before: T0, not_after: T0 - 1 })
        );
        let strict = Policy { max_lifetime_secs: 7 * DAY, ..Policy::default() };
        assert_eq!(
            issued().verify(&net(), T0, &strict),
            Err(CertificateError::LifetimeTooLong { lifetime_secs: 30 * DAY, max_secs: 7 * DAY })
        );
    }

    #[test]
    fn region_limit() {
        let mut t = terms();
        t.region = "x".repeat(65);
        assert_eq!(
            SignedDelegation::issue(&key(1), net(), t.clone()),
            Err(CertificateError::RegionTooLong(65))
        );
        let mut cert = issued();
        cert.region = t.region;
        assert_eq!(
            cert.verify(&net(), T0, &Policy::default()),
            Err(CertificateError::RegionTooLong(65))
        );
        assert_eq!(SignedDelegation::decode(&cert.encode()), Err(DecodeError::RegionTooLong(65)));
        let mut t = terms();
        t.region = "é".repeat(32); // 64 bytes
        assert!(SignedDelegation::issue(&key(1), net(), t).is_ok());
    }

    /// Re-encodes the certificate's map with one entry changed (None removes it).
    fn with_entry(key: u64, value: Option<Value>) -> Vec<u8> {
        let Value::Map(entries) = cbor::from_slice(&issued().encode()).unwrap() else {
            unreachable!()
        };
        let mut entries: Vec<(Value, Value)> =
            entries.into_iter().filter(|(k, _)| *k != Value::Integer(key.into())).collect();
        if let Some(v) = value {
            entries.push((Value::Integer(key.into()), v));
        }
        cbor::to_vec(&Value::Map(entries))
    }

    #[test]
    fn decode_errors() {
        assert_eq!(
            SignedDelegation::decode(&with_entry(11, Some(uint(0)))),
            Err(DecodeError::UnknownKey(11))
        );
        assert_eq!(
            SignedDelegation::decode(&with_entry(10, None)),
            Err(DecodeError::MissingKey { key: 10, field: "signature" })
        );
        assert_eq!(
            SignedDelegation::decode(&with_entry(6, Some(uint(1)))),
            Err(DecodeError::WrongType { key: 6, field: "region", expected: "a text string" })
        );
        assert_eq!(
            SignedDelegation::decode(&with_entry(7, Some(Value::Text("1".into())))),
            Err(DecodeError::WrongType { key: 7, field: "not_before", expected: "a uint64" })
        );
        assert_eq!(
            SignedDelegation::decode(&with_entry(3, Some(Value::Bytes(vec![0; 19])))),
            Err(DecodeError::WrongLength { key: 3, field: "principal", expected: 20, actual: 19 })
        );
        assert_eq!(
            SignedDelegation::decode(&with_entry(10, Some(Value::Bytes(vec![0; 64])))),
            Err(DecodeError::WrongLength { key: 10, field: "signature", expected: 65, actual: 64 })
        );
        assert_eq!(
            SignedDelegation::decode(&with_entry(5, Some(uint(5)))),
            Err(DecodeError::BadRole(5))
        );
        assert_eq!(
            SignedDelegation::decode(&with_entry(5, Some(uint(256 + 2)))),
            Err(DecodeError::BadRole(258))
        );
        assert_eq!(
            SignedDelegation::decode(&with_entry(0, Some(uint(2)))),
            Err(DecodeError::UnsupportedVersion(2))
        );
        let mut trailing = issued().encode();
        trailing.push(0);
        assert!(matches!(SignedDelegation::decode(&trailing), Err(DecodeError::Cbor(_))));
        assert!(matches!(
            SignedDelegation::decode(&[0u8; 2000]),
            Err(DecodeError::TooLarge { size: 2000, max: 1024 })
        ));
    }

    #[test]
    fn error_messages_are_stable() {
        let e = CertificateError::Expired { not_after: 5, now: 6 };
        assert_eq!(e.to_string(), "expired at 5 (now 6)");
        let e = CertificateError::WrongNetwork {
            expected: net(),
            actual: Eip712Network { chain_id: 1, verifying_contract: Address::ZERO },
        };
        assert_eq!(
            e.to_string(),
            "signed for chain 1 contract 0x0000000000000000000000000000000000000000, but this \
             network is chain 42161 contract 0x35bcf3c30594191d53231e4ff333e8a770453e40"
        );
        assert_eq!(
            DecodeError::MissingKey { key: 10, field: "signature" }.to_string(),
            "missing key 10 (signature)"
        );
    }
}
