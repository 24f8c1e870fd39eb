//! Golden vectors and property tests for the certificate and revocation
//! wire formats and the wallet JSON.
//!
//! The golden vectors live in `tests/vectors/delegation.json`. To regenerate
//! them after an intended format change: `VOUCH_BLESS=1 cargo test -p
//! vouch-delegation --test wire` (and say why in the commit).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use k256::ecdsa::SigningKey;
use proptest::prelude::*;
use serde_json::{Value, json};
use vouch_delegation::{
    ALL_ROLES, DelegationTerms, Eip712Network, Policy, Role, SignedDelegation, SignedRevocation,
    keys, wallet,
};
use vouch_schema::{Address, Signature};

fn key(n: u8) -> SigningKey {
    vouch_testkit::keys::numbered(n.into())
}

fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/delegation.json")
}

/// The golden certificate: principal key 1, delegate = key 2's address.
fn golden_delegation() -> SignedDelegation {
    SignedDelegation::issue(
        &key(1),
        Eip712Network::arbitrum_one(),
        DelegationTerms {
            delegate: keys::address(&key(2)),
            role: Role::Gateway,
            region: "eu-west".into(),
            not_before: 1_700_000_000,
            not_after: 1_702_592_000,
            nonce: 7,
        },
    )
    .unwrap()
}

fn golden_revocation() -> SignedRevocation {
    SignedRevocation::issue(
        &key(1),
        Eip712Network::arbitrum_one(),
        keys::address(&key(2)),
        1_701_000_000,
    )
}

fn golden_json() -> Value {
    let d = golden_delegation();
    let r = golden_revocation();
    let net = Eip712Network::arbitrum_one();
    json!({
        "description": "Vouch EIP-712 Delegation and Revocation golden vectors. Principal \
            key is the secp256k1 scalar 1, delegate is the address of scalar 2. Signatures \
            are RFC 6979 (deterministic), r||s||v with v = 27 + recovery id, and equal what \
            ethers' Wallet.signTypedData produces. cbor is the deterministic wire encoding; \
            blake3 is its hash.",
        "principal_key": hex0x(&key(1).to_bytes()),
        "network": {"chain_id": net.chain_id, "verifying_contract": net.verifying_contract},
        "domain_separator": hex0x(&net.domain_separator()),
        "delegation": {
            "type": vouch_delegation::DELEGATION_TYPE,
            "wallet_json": wallet::export_delegation(&d),
            "signing_hash": hex0x(&d.signing_hash()),
            "signature": hex0x(&d.signature.0),
            "cbor": hex0x(&d.encode()),
            "blake3": hex0x(&d.hash()),
        },
        "revocation": {
            "type": vouch_delegation::REVOCATION_TYPE,
            "wallet_json": wallet::export_revocation(&r),
            "signing_hash": hex0x(&r.signing_hash()),
            "signature": hex0x(&r.signature.0),
            "cbor": hex0x(&r.encode()),
            "blake3": hex0x(&r.hash()),
        },
    })
}

#[test]
fn golden_vectors_reproduce() {
    let computed = golden_json();
    let path = vectors_path();
    if std::env::var_os("VOUCH_BLESS").is_some() {
        let mut text = serde_json::to_string_pretty(&computed).unwrap();
        text.push('\n');
        std::fs::write(&path, text).unwrap();
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(stored, computed, "golden vectors changed; see the module docs");

    // The stored bytes decode, verify, and re-encode to themselves.
    let cbor = hex::decode(&stored["delegation"]["cbor"].as_str().unwrap()[2..]).unwrap();
    let cert = SignedDelegation::decode(&cbor).unwrap();
    let v = cert.verify(&Eip712Network::arbitrum_one(), 1_700_000_000, &Policy::default()).unwrap();
    assert_eq!(v.principal().to_string(), "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf");
    assert_eq!(hex0x(&v.hash()), stored["delegation"]["blake3"].as_str().unwrap());
    let cbor = hex::decode(&stored["revocation"]["cbor"].as_str().unwrap()[2..]).unwrap();
    SignedRevocation::decode(&cbor).unwrap().verify(&Eip712Network::arbitrum_one()).unwrap();
}

fn address() -> impl Strategy<Value = Address> {
    any::<[u8; 20]>().prop_map(Address)
}

fn signature() -> impl Strategy<Value = Signature> {
    prop::collection::vec(any::<u8>(), 65).prop_map(|v| {
        let mut s = [0u8; 65];
        s.copy_from_slice(&v);
        Signature(s)
    })
}

fn network() -> impl Strategy<Value = Eip712Network> {
    (any::<u64>(), address())
        .prop_map(|(chain_id, verifying_contract)| Eip712Network { chain_id, verifying_contract })
}

fn delegation() -> impl Strategy<Value = SignedDelegation> {
    (
        network(),
        address(),
        address(),
        0..ALL_ROLES.len(),
        // At most 16 characters of at most 4 bytes: within the 64-byte limit.
        ".{0,16}",
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        signature(),
    )
        .prop_map(|(network, principal, delegate, role, region, nb, na, nonce, signature)| {
            SignedDelegation {
                network,
                principal,
                delegate,
                role: ALL_ROLES[role],
                region,
                not_before: nb,
                not_after: na,
                nonce,
                signature,
            }
        })
}

fn revocation() -> impl Strategy<Value = SignedRevocation> {
    (network(), address(), address(), any::<u64>(), signature()).prop_map(
        |(network, principal, delegate, revoked_at, signature)| SignedRevocation {
            network,
            principal,
            delegate,
            revoked_at,
            signature,
        },
    )
}

/// Wallets write `v` as 27/28, and import reads 0/1 as 27/28.
fn wallet_v(mut s: Signature) -> Signature {
    s.0[64] = 27 + (s.0[64] & 1);
    s
}

proptest! {
    #[test]
    fn delegation_cbor_round_trips(d in delegation()) {
        let bytes = d.encode();
        prop_assert!(bytes.len() <= vouch_delegation::MAX_ENCODED_BYTES);
        prop_assert_eq!(SignedDelegation::decode(&bytes).unwrap(), d);
    }

    #[test]
    fn revocation_cbor_round_trips(r in revocation()) {
        prop_assert_eq!(SignedRevocation::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn wallet_json_round_trips(mut d in delegation(), mut r in revocation()) {
        d.signature = wallet_v(d.signature);
        r.signature = wallet_v(r.signature);
        let text = wallet::export_delegation(&d).to_string();
        prop_assert_eq!(wallet::import_delegation(&text).unwrap(), d);
        let text = wallet::export_revocation(&r).to_string();
        prop_assert_eq!(wallet::import_revocation(&text).unwrap(), r);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1200)) {
        let _ = SignedDelegation::decode(&bytes);
        let _ = SignedRevocation::decode(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = wallet::import_delegation(&text);
        let _ = wallet::import_revocation(&text);
    }

    /// Mutating one byte of a valid encoding is either rejected or yields a
    /// value that re-encodes to exactly the mutated bytes (decoding is strict).
    #[test]
    fn mutated_encodings_are_rejected_or_canonical(
        d in delegation(),
        r in revocation(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = d.encode();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(back) = SignedDelegation::decode(&bytes) {
            prop_assert_eq!(back.encode(), bytes);
        }
        let mut bytes = r.encode();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(back) = SignedRevocation::decode(&bytes) {
            prop_assert_eq!(back.encode(), bytes);
        }
    }

    #[test]
    fn mutated_wallet_json_never_panics(
        d in delegation(),
        at in any::<prop::sample::Index>(),
        c in any::<char>(),
    ) {
        let mut chars: Vec<char> = wallet::export_delegation(&d).to_string().chars().collect();
        let i = at.index(chars.len());
        chars[i] = c;
        let text: String = chars.into_iter().collect();
        let _ = wallet::import_delegation(&text);
        let _ = wallet::import_revocation(&text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Issued certificates verify for their network within their window.
    #[test]
    fn issued_certificates_verify(
        principal in 1u8..=255,
        delegate in address(),
        role in 0..ALL_ROLES.len(),
        region in ".{0,16}",
        not_before in 0u64..u64::MAX / 2,
        lifetime in 1u64..=Policy::DEFAULT_MAX_LIFETIME_SECS,
        nonce in any::<u64>(),
    ) {
        let net = Eip712Network::arbitrum_one();
        let terms = DelegationTerms {
            delegate,
            role: ALL_ROLES[role],
            region,
            not_before,
            not_after: not_before + lifetime,
            nonce,
        };
        let cert = SignedDelegation::issue(&key(principal), net, terms).unwrap();
        let v = cert.verify(&net, not_before, &Policy::default()).unwrap();
        prop_assert_eq!(v.principal(), keys::address(&key(principal)));
        let r = SignedRevocation::issue(&key(principal), net, delegate, nonce);
        prop_assert!(r.verify(&net).is_ok());
    }
}
