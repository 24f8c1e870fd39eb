//! Revocations: a principal withdraws a delegate's certificates.
//!
//! Signed as the EIP-712 [`Revocation`] under the same domain as
//! certificates. From `revokedAt` on, verifiers reject the delegate's
//! envelopes. Only [`SignedRevocation::verify`] makes a [`VerifiedRevocation`].
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
//! | 5 | revoked_at | uint (Unix seconds) |
//! | 6 | signature | bytes(65), r ‖ s ‖ v |

use ciborium::Value;
use k256::ecdsa::SigningKey;
use vouch_schema::crypto::address_of;
use vouch_schema::{Address, Signature, cbor};

use crate::certificate::{CertificateError, check_network, check_signer};
use crate::eip712::{self, Eip712Network, Revocation};
use crate::wire::{DecodeError, Fields, WIRE_VERSION, int_map, uint};

/// A revocation as it travels: signed, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRevocation {
    /// The chain and contract of the EIP-712 domain it was signed under.
    pub network: Eip712Network,
    /// The principal's on-chain address, who must have signed.
    pub principal: Address,
    /// The delegate whose certificates are withdrawn.
    pub delegate: Address,
    /// When the revocation takes effect (Unix seconds).
    pub revoked_at: u64,
    /// The principal's EIP-712 signature, r ‖ s ‖ v.
    pub signature: Signature,
}

const FIELDS: &[(u64, &str)] = &[
    (0, "version"),
    (1, "chain_id"),
    (2, "verifying_contract"),
    (3, "principal"),
    (4, "delegate"),
    (5, "revoked_at"),
    (6, "signature"),
];

impl SignedRevocation {
    /// Signs a revocation of `delegate`, effective at `revoked_at` (Unix seconds).
    pub fn issue(
        principal_key: &SigningKey,
        network: Eip712Network,
        delegate: Address,
        revoked_at: u64,
    ) -> SignedRevocation {
        let mut r = SignedRevocation {
            network,
            principal: address_of(principal_key.verifying_key()),
            delegate,
            revoked_at,
            signature: Signature([0; 65]),
        };
        r.signature = Signature::sign_prehash(principal_key, &r.signing_hash());
        r
    }

    /// The EIP-712 struct that is signed.
    pub fn typed_data(&self) -> Revocation {
        Revocation {
            principal: eip712::to_alloy(self.principal),
            delegate: eip712::to_alloy(self.delegate),
            revokedAt: self.revoked_at,
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
            (5, uint(self.revoked_at)),
            (6, Value::Bytes(self.signature.0.to_vec())),
        ]))
    }

    /// Decodes the wire encoding strictly (see [`crate::SignedDelegation::decode`]).
    pub fn decode(bytes: &[u8]) -> Result<SignedRevocation, DecodeError> {
        let mut f = Fields::decode(bytes, FIELDS)?;
        let chain_id = f.uint(1)?;
        let verifying_contract = Address(f.bytes(2)?);
        Ok(SignedRevocation {
            network: Eip712Network { chain_id, verifying_contract },
            principal: Address(f.bytes(3)?),
            delegate: Address(f.bytes(4)?),
            revoked_at: f.uint(5)?,
            signature: Signature(f.bytes(6)?),
        })
    }

    /// blake3 of the wire encoding.
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(&self.encode()).as_bytes()
    }

    /// Checks that it was signed for `expected_network` by its principal.
    /// A `revokedAt` in the future is allowed: it schedules the revocation.
    pub fn verify(
        &self,
        expected_network: &Eip712Network,
    ) -> Result<VerifiedRevocation, CertificateError> {
        check_network(expected_network, &self.network)?;
        check_signer(&self.signature, &self.signing_hash(), self.principal)?;
        Ok(VerifiedRevocation { hash: self.hash(), revocation: self.clone() })
    }
}

/// A revocation that passed [`SignedRevocation::verify`]. Only this crate
/// makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRevocation {
    revocation: SignedRevocation,
    hash: [u8; 32],
}

impl VerifiedRevocation {
    /// The revocation as signed.
    pub fn revocation(&self) -> &SignedRevocation {
        &self.revocation
    }

    /// The network it was verified for.
    pub fn network(&self) -> Eip712Network {
        self.revocation.network
    }

    /// The principal that signed it.
    pub fn principal(&self) -> Address {
        self.revocation.principal
    }

    /// The delegate whose certificates are withdrawn.
    pub fn delegate(&self) -> Address {
        self.revocation.delegate
    }

    /// When it takes effect (Unix seconds).
    pub fn revoked_at(&self) -> u64 {
        self.revocation.revoked_at
    }

    /// blake3 of the wire encoding, computed once.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The revocation as signed, by value.
    pub fn into_revocation(self) -> SignedRevocation {
        self.revocation
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use vouch_schema::SignatureError;

    fn key(n: u8) -> SigningKey {
        let mut k = [0u8; 32];
        k[31] = n;
        SigningKey::from_bytes(&k.into()).unwrap()
    }

    fn net() -> Eip712Network {
        Eip712Network::arbitrum_one()
    }

    fn issued() -> SignedRevocation {
        SignedRevocation::issue(&key(1), net(), address_of(key(2).verifying_key()), 1_700_000_000)
    }

    #[test]
    fn issue_encode_decode_verify() {
        let r = issued();
        let bytes = r.encode();
        let back = SignedRevocation::decode(&bytes).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.hash(), *blake3::hash(&bytes).as_bytes());
        let v = back.verify(&net()).unwrap();
        assert_eq!(v.principal(), r.principal);
        assert_eq!(v.delegate(), r.delegate);
        assert_eq!(v.revoked_at(), 1_700_000_000);
        assert_eq!(v.network(), net());
        assert_eq!(v.hash(), r.hash());
        assert_eq!(v.revocation(), &r);
        assert_eq!(v.into_revocation(), r);
    }

    #[test]
    fn verify_errors() {
        let other = Eip712Network { chain_id: 5, ..net() };
        assert_eq!(
            issued().verify(&other),
            Err(CertificateError::WrongNetwork { expected: other, actual: net() })
        );
        let mut r = issued();
        r.revoked_at += 1;
        assert!(matches!(r.verify(&net()), Err(CertificateError::WrongSigner { .. })));
        let mut r = issued();
        r.signature.0[..32].fill(0);
        assert_eq!(
            r.verify(&net()),
            Err(CertificateError::BadSignature(SignatureError::BadScalar))
        );
    }

    #[test]
    fn decode_errors() {
        let Value::Map(mut entries) = cbor::from_slice(&issued().encode()).unwrap() else {
            unreachable!()
        };
        entries.retain(|(k, _)| *k != Value::Integer(5.into()));
        let missing = cbor::to_vec(&Value::Map(entries.clone()));
        assert_eq!(
            SignedRevocation::decode(&missing),
            Err(DecodeError::MissingKey { key: 5, field: "revoked_at" })
        );
        entries.push((Value::Integer(7.into()), uint(1)));
        let unknown = cbor::to_vec(&Value::Map(entries));
        assert_eq!(SignedRevocation::decode(&unknown), Err(DecodeError::UnknownKey(7)));
        // A certificate is not a revocation.
        let cert = crate::SignedDelegation::issue(
            &key(1),
            net(),
            crate::DelegationTerms {
                delegate: Address::ZERO,
                role: crate::Role::Runner,
                region: String::new(),
                not_before: 0,
                not_after: 1,
                nonce: 0,
            },
        )
        .unwrap();
        assert_eq!(SignedRevocation::decode(&cert.encode()), Err(DecodeError::UnknownKey(7)));
    }
}
