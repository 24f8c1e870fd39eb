//! Cross-implementation checks against a real wallet library: ethers v6,
//! driven through `interop/wallet.mjs`. Needs `node` and the interop
//! packages (`npm ci --prefix interop`).
//!
//! Both directions, for certificates and revocations: an ethers-signed
//! document imports and verifies here; a Rust-issued one verifies with ethers
//! and recovers the principal; a tampered one fails in both.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use k256::ecdsa::SigningKey;
use serde_json::{Value, json};
use vouch_delegation::{
    CertificateError, DelegationTerms, Eip712Network, Policy, Role, SignedDelegation,
    SignedRevocation, keys, wallet,
};
use vouch_schema::Address;
use vouch_testkit::actor::local_chain;

const T0: u64 = 1_750_000_000;

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("interop")
}

/// Runs `node interop/wallet.mjs args…` and parses its JSON output.
fn wallet_mjs(args: &[&str]) -> Value {
    let dir = interop_dir();
    assert!(dir.join("node_modules").is_dir(), "run `npm ci --prefix interop` first");
    let out = Command::new("node")
        .arg(dir.join("wallet.mjs"))
        .args(args)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node (needed for the wallet interop tests): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wallet.mjs {args:?} failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn key_hex(key: &SigningKey) -> String {
    format!("0x{}", hex::encode(key.to_bytes()))
}

/// ethers' verdict on a wallet document: (ok, signer).
fn ethers_verify(doc: &Value) -> (bool, Option<Address>, Value) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), doc.to_string()).unwrap();
    let out = wallet_mjs(&["verify", file.path().to_str().unwrap()]);
    let signer = out["signer"].as_str().map(|s| s.parse().unwrap());
    (out["ok"].as_bool().unwrap(), signer, out["hash"].clone())
}

fn domain_json(net: &Eip712Network) -> String {
    json!({
        "name": "Vouch Telemetry",
        "version": "1",
        "chainId": net.chain_id,
        "verifyingContract": net.verifying_contract,
    })
    .to_string()
}

#[test]
fn ethers_signed_delegation_verifies_in_rust() {
    let principal = keys::generate();
    let delegate = keys::generate();
    let message = json!({
        "delegate": keys::address(&delegate),
        "role": 1,
        "region": "ap-southeast",
        "notBefore": T0,
        "notAfter": (T0 + 86_400).to_string(),
        "nonce": u64::MAX.to_string(),
    });
    for net in [Eip712Network::arbitrum_one(), local_chain()] {
        let doc = wallet_mjs(&[
            "sign-delegation",
            &key_hex(&principal),
            &message.to_string(),
            &domain_json(&net),
        ]);
        let cert = wallet::import_delegation(&doc.to_string()).unwrap();
        let v = cert.verify(&net, T0, &Policy::default()).unwrap();
        assert_eq!(v.principal(), keys::address(&principal));
        assert_eq!(v.delegate(), keys::address(&delegate));
        assert_eq!(v.role(), Role::Runner);
        assert_eq!(v.nonce(), u64::MAX);
        // Through the wire format and back, still verifies.
        let wire = SignedDelegation::decode(&cert.encode()).unwrap();
        assert!(wire.verify(&net, T0, &Policy::default()).is_ok());
        // Re-export equals what ethers signed, up to formatting.
        assert_eq!(
            wallet::import_delegation(&wallet::export_delegation(&cert).to_string()),
            Ok(cert)
        );
    }
    let doc = wallet_mjs(&["sign-delegation", &key_hex(&principal), &message.to_string()]);
    let cert = wallet::import_delegation(&doc.to_string()).unwrap();
    assert!(matches!(
        cert.verify(&local_chain(), T0, &Policy::default()),
        Err(CertificateError::WrongNetwork { .. })
    ));
}

#[test]
fn tampered_ethers_delegation_fails_in_rust() {
    let principal = keys::generate();
    let message = json!({
        "delegate": keys::address(&keys::generate()),
        "role": 2,
        "region": "eu-west",
        "notBefore": T0.to_string(),
        "notAfter": (T0 + 3600).to_string(),
        "nonce": "1",
    });
    let doc = wallet_mjs(&["sign-delegation", &key_hex(&principal), &message.to_string()]);
    for (field, value) in [
        ("region", json!("us-east")),
        ("role", json!(0)),
        ("notAfter", json!((T0 + 7200).to_string())),
    ] {
        let mut tampered = doc.clone();
        tampered["message"][field] = value;
        let cert = wallet::import_delegation(&tampered.to_string()).unwrap();
        let err = cert.verify(&Eip712Network::arbitrum_one(), T0, &Policy::default());
        assert!(matches!(err, Err(CertificateError::WrongSigner { .. })), "{field}: {err:?}");
    }
}

#[test]
fn rust_issued_delegation_verifies_with_ethers() {
    let principal = keys::generate();
    // A chain id above 2^53 exercises the string form of chainId.
    for net in [Eip712Network::arbitrum_one(), Eip712Network { chain_id: 1 << 60, ..local_chain() }]
    {
        let cert = SignedDelegation::issue(
            &principal,
            net,
            DelegationTerms {
                delegate: keys::address(&keys::generate()),
                role: Role::Loadtest,
                region: "région-✓".into(),
                not_before: T0,
                not_after: T0 + 7 * 86_400,
                nonce: u64::MAX - 1,
            },
        )
        .unwrap();
        let doc = wallet::export_delegation(&cert);
        let (ok, signer, hash) = ethers_verify(&doc);
        assert!(ok, "{doc}");
        assert_eq!(signer, Some(cert.principal));
        assert_eq!(hash, json!(format!("0x{}", hex::encode(cert.signing_hash()))));

        let mut tampered = doc.clone();
        tampered["message"]["nonce"] = json!("1");
        let (ok, signer, _) = ethers_verify(&tampered);
        assert!(!ok);
        assert_ne!(signer, Some(cert.principal));
    }
}

#[test]
fn golden_vector_signature_equals_ethers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/delegation.json");
    let vectors: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let key = vectors["principal_key"].as_str().unwrap();
    for (kind, cmd) in [("delegation", "sign-delegation"), ("revocation", "sign-revocation")] {
        let v = &vectors[kind];
        let signed = wallet_mjs(&[cmd, key, &v["wallet_json"]["message"].to_string()]);
        assert_eq!(signed["signature"], v["signature"], "{kind}");
        let (ok, _, hash) = ethers_verify(&v["wallet_json"]);
        assert!(ok, "{kind}");
        assert_eq!(hash, v["signing_hash"], "{kind}");
    }
}

#[test]
fn ethers_signed_revocation_verifies_in_rust() {
    let principal = keys::generate();
    let delegate = keys::address(&keys::generate());
    let message = json!({"delegate": delegate, "revokedAt": T0});
    let doc = wallet_mjs(&["sign-revocation", &key_hex(&principal), &message.to_string()]);
    let r = wallet::import_revocation(&doc.to_string()).unwrap();
    let v = r.verify(&Eip712Network::arbitrum_one()).unwrap();
    assert_eq!(v.principal(), keys::address(&principal));
    assert_eq!(v.delegate(), delegate);
    assert_eq!(v.revoked_at(), T0);
    assert!(
        SignedRevocation::decode(&r.encode())
            .unwrap()
            .verify(&Eip712Network::arbitrum_one())
            .is_ok()
    );

    let mut tampered = doc.clone();
    tampered["message"]["revokedAt"] = json!(T0 + 1);
    let r = wallet::import_revocation(&tampered.to_string()).unwrap();
    assert!(matches!(
        r.verify(&Eip712Network::arbitrum_one()),
        Err(CertificateError::WrongSigner { .. })
    ));
}

#[test]
fn rust_issued_revocation_verifies_with_ethers() {
    let principal = keys::generate();
    let r = SignedRevocation::issue(
        &principal,
        local_chain(),
        keys::address(&keys::generate()),
        u64::MAX,
    );
    let doc = wallet::export_revocation(&r);
    let (ok, signer, hash) = ethers_verify(&doc);
    assert!(ok, "{doc}");
    assert_eq!(signer, Some(r.principal));
    assert_eq!(hash, json!(format!("0x{}", hex::encode(r.signing_hash()))));

    let mut tampered = doc.clone();
    tampered["message"]["delegate"] = json!(keys::address(&keys::generate()));
    let (ok, signer, _) = ethers_verify(&tampered);
    assert!(!ok);
    assert_ne!(signer, Some(r.principal));
}
