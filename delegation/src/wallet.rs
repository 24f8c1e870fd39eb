//! The JSON that EIP-712 wallets sign and produce.
//!
//! [`delegation_request`] is exactly the `eth_signTypedData_v4` parameter:
//! `{"domain", "types" (with "EIP712Domain"), "primaryType", "message"}`.
//! [`export_delegation`] adds the `"signature"` (`0x` + 130 hex digits), and
//! [`import_delegation`] reads such a document back, checking that its domain
//! and types are Vouch's exactly, into a [`SignedDelegation`] that then goes
//! through the normal [`SignedDelegation::verify`]. The same for revocations.
//!
//! On import, uint values may be JSON numbers, decimal strings or `0x`-hex
//! strings; addresses may be in any letter case; a signature `v` of 0 or 1
//! (some hardware wallets) is read as 27 or 28.

use serde_json::{Map, Value, json};
use vouch_schema::{Address, SharedError, Signature};

use crate::eip712::{DOMAIN_NAME, DOMAIN_VERSION, Eip712Network, checksummed};
use crate::wire::MAX_REGION_BYTES;
use crate::{DelegationTerms, Role, SignedDelegation, SignedRevocation};

/// Largest wallet JSON document read, in bytes.
pub const MAX_WALLET_JSON_BYTES: usize = 16 * 1024;

/// Why a wallet JSON document is not a Vouch delegation or revocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    /// Over [`MAX_WALLET_JSON_BYTES`].
    #[error("wallet JSON is {0} bytes, over the 16 KiB limit")]
    TooLarge(usize),
    /// Not JSON at all.
    #[error("not valid JSON: {0}")]
    Json(#[source] SharedError<serde_json::Error>),
    /// A value that must be a JSON object is not one.
    #[error("{0} must be a JSON object")]
    NotAnObject(&'static str),
    /// A required member is absent.
    #[error("{object} has no {field:?}")]
    MissingField {
        /// Where: `document`, `domain`, `types` or `message`.
        object: &'static str,
        /// The absent member.
        field: &'static str,
    },
    /// A member Vouch does not define.
    #[error("{object} has an unexpected member {field:?}")]
    UnknownField {
        /// Where: `document`, `domain`, `types` or `message`.
        object: &'static str,
        /// The unexpected member.
        field: String,
    },
    /// `primaryType` is not the one expected.
    #[error("primaryType is {actual:?}, expected {expected:?}")]
    WrongPrimaryType {
        /// `Delegation` or `Revocation`.
        expected: &'static str,
        /// What the document says.
        actual: String,
    },
    /// A type in `types` differs from Vouch's definition.
    #[error("types.{name} is {actual}, expected {expected}")]
    TypeMismatch {
        /// The type's name.
        name: &'static str,
        /// Vouch's definition, as `Name(type field,...)`.
        expected: String,
        /// The document's definition, in the same form (or its JSON if malformed).
        actual: String,
    },
    /// The domain's `name` or `version` is not Vouch's.
    #[error("domain.{field} is {actual}, expected {expected:?}")]
    WrongDomain {
        /// `name` or `version`.
        field: &'static str,
        /// Vouch's value.
        expected: &'static str,
        /// The document's value, as JSON.
        actual: String,
    },
    /// An address field is not `0x` and 40 hex digits.
    #[error("{field} is not an address: {value}")]
    BadAddress {
        /// The field.
        field: &'static str,
        /// Its JSON.
        value: String,
    },
    /// An integer field is not an unsigned integer that fits its type.
    #[error("{field} is not a {bits}-bit unsigned integer: {value}")]
    BadUint {
        /// The field.
        field: &'static str,
        /// 8 or 64.
        bits: u32,
        /// Its JSON.
        value: String,
    },
    /// `role` is a uint8 but not a defined role.
    #[error(
        "role {0} is not defined (0 orchestrator, 1 runner, 2 gateway, 3 loadtest, 4 verifier)"
    )]
    BadRole(u8),
    /// A string field is not a JSON string.
    #[error("{0} must be a string")]
    NotAString(&'static str),
    /// `region` over 64 bytes.
    #[error("region is {0} bytes, over the 64-byte limit")]
    RegionTooLong(usize),
    /// `signature` is not `0x` and 130 hex digits.
    #[error("signature must be 0x followed by 130 hex digits")]
    BadSignature,
}

const DOMAIN_FIELDS: [(&str, &str); 4] = [
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
];
const DELEGATION_FIELDS: [(&str, &str); 7] = [
    ("principal", "address"),
    ("delegate", "address"),
    ("role", "uint8"),
    ("region", "string"),
    ("notBefore", "uint64"),
    ("notAfter", "uint64"),
    ("nonce", "uint64"),
];
const REVOCATION_FIELDS: [(&str, &str); 3] =
    [("principal", "address"), ("delegate", "address"), ("revokedAt", "uint64")];

/// JavaScript's largest exact integer: bigger uint64 values are written as
/// decimal strings so that no JavaScript wallet rounds them.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The `eth_signTypedData_v4` parameter for a certificate `principal` would sign.
pub fn delegation_request(
    network: &Eip712Network,
    principal: Address,
    terms: &DelegationTerms,
) -> Value {
    request(
        network,
        "Delegation",
        &DELEGATION_FIELDS,
        json!({
            "principal": checksummed(principal),
            "delegate": checksummed(terms.delegate),
            "role": terms.role as u8,
            "region": terms.region,
            "notBefore": terms.not_before.to_string(),
            "notAfter": terms.not_after.to_string(),
            "nonce": terms.nonce.to_string(),
        }),
    )
}

/// [`delegation_request`] for `cert` plus its `"signature"`.
pub fn export_delegation(cert: &SignedDelegation) -> Value {
    with_signature(
        delegation_request(&cert.network, cert.principal, &cert.terms()),
        &cert.signature,
    )
}

/// Reads a signed wallet document whose `primaryType` is `Delegation`.
/// The result is not verified: call [`SignedDelegation::verify`].
pub fn import_delegation(json: &str) -> Result<SignedDelegation, WalletError> {
    let mut doc = Document::parse(json, "Delegation", &DELEGATION_FIELDS)?;
    let m = &mut doc.message;
    let principal = m.address("principal")?;
    let delegate = m.address("delegate")?;
    let role_n = m.uint("role", 8)? as u8;
    let role = Role::from_u8(role_n).map_err(|_| WalletError::BadRole(role_n))?;
    let region = m.string("region")?;
    if region.len() > MAX_REGION_BYTES {
        return Err(WalletError::RegionTooLong(region.len()));
    }
    Ok(SignedDelegation {
        network: doc.network,
        principal,
        delegate,
        role,
        region,
        not_before: m.uint("notBefore", 64)?,
        not_after: m.uint("notAfter", 64)?,
        nonce: m.uint("nonce", 64)?,
        signature: doc.signature,
    })
}

/// The `eth_signTypedData_v4` parameter for a revocation `principal` would sign.
pub fn revocation_request(
    network: &Eip712Network,
    principal: Address,
    delegate: Address,
    revoked_at: u64,
) -> Value {
    request(
        network,
        "Revocation",
        &REVOCATION_FIELDS,
        json!({
            "principal": checksummed(principal),
            "delegate": checksummed(delegate),
            "revokedAt": revoked_at.to_string(),
        }),
    )
}

/// [`revocation_request`] for `revocation` plus its `"signature"`.
pub fn export_revocation(revocation: &SignedRevocation) -> Value {
    with_signature(
        revocation_request(
            &revocation.network,
            revocation.principal,
            revocation.delegate,
            revocation.revoked_at,
        ),
        &revocation.signature,
    )
}

/// Reads a signed wallet document whose `primaryType` is `Revocation`.
/// The result is not verified: call [`SignedRevocation::verify`].
pub fn import_revocation(json: &str) -> Result<SignedRevocation, WalletError> {
    let mut doc = Document::parse(json, "Revocation", &REVOCATION_FIELDS)?;
    let m = &mut doc.message;
    Ok(SignedRevocation {
        network: doc.network,
        principal: m.address("principal")?,
        delegate: m.address("delegate")?,
        revoked_at: m.uint("revokedAt", 64)?,
        signature: doc.signature,
    })
}

fn type_json(fields: &[(&str, &str)]) -> Value {
    Value::Array(fields.iter().map(|(n, t)| json!({"name": n, "type": t})).collect())
}

fn request(
    network: &Eip712Network,
    primary: &str,
    fields: &[(&str, &str)],
    message: Value,
) -> Value {
    let chain_id = if network.chain_id <= MAX_SAFE_INTEGER {
        json!(network.chain_id)
    } else {
        json!(network.chain_id.to_string())
    };
    let mut types = Map::new();
    types.insert("EIP712Domain".into(), type_json(&DOMAIN_FIELDS));
    types.insert(primary.into(), type_json(fields));
    json!({
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": checksummed(network.verifying_contract),
        },
        "types": types,
        "primaryType": primary,
        "message": message,
    })
}

fn with_signature(mut request: Value, signature: &Signature) -> Value {
    if let Value::Object(o) = &mut request {
        o.insert("signature".into(), json!(format!("0x{}", hex::encode(signature.0))));
    }
    request
}

/// A JSON object whose members are taken out one by one, so that leftovers
/// (unknown members) can be reported.
struct Members {
    name: &'static str,
    map: Map<String, Value>,
}

impl Members {
    fn new(name: &'static str, value: Value) -> Result<Members, WalletError> {
        match value {
            Value::Object(map) => Ok(Members { name, map }),
            _ => Err(WalletError::NotAnObject(name)),
        }
    }

    fn take(&mut self, field: &'static str) -> Result<Value, WalletError> {
        self.map.remove(field).ok_or(WalletError::MissingField { object: self.name, field })
    }

    /// Fails if any member was not taken.
    fn finish(self) -> Result<(), WalletError> {
        match self.map.into_iter().next() {
            Some((field, _)) => Err(WalletError::UnknownField { object: self.name, field }),
            None => Ok(()),
        }
    }

    fn string(&mut self, field: &'static str) -> Result<String, WalletError> {
        match self.take(field)? {
            Value::String(s) => Ok(s),
            _ => Err(WalletError::NotAString(field)),
        }
    }

    fn address(&mut self, field: &'static str) -> Result<Address, WalletError> {
        let v = self.take(field)?;
        v.as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| WalletError::BadAddress { field, value: v.to_string() })
    }

    /// A uint that fits `bits` bits (8 or 64), as a number or a decimal or
    /// `0x`-hex string.
    fn uint(&mut self, field: &'static str, bits: u32) -> Result<u64, WalletError> {
        let v = self.take(field)?;
        let n = match &v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => parse_uint_string(s),
            _ => None,
        };
        n.filter(|n| bits >= 64 || *n < (1u64 << bits)).ok_or_else(|| WalletError::BadUint {
            field,
            bits,
            value: v.to_string(),
        })
    }
}

fn parse_uint_string(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x") {
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        return u64::from_str_radix(h, 16).ok();
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The parts of a signed document common to both primary types.
struct Document {
    network: Eip712Network,
    message: Members,
    signature: Signature,
}

impl Document {
    fn parse(
        json: &str,
        primary: &'static str,
        fields: &[(&str, &str)],
    ) -> Result<Document, WalletError> {
        if json.len() > MAX_WALLET_JSON_BYTES {
            return Err(WalletError::TooLarge(json.len()));
        }
        let value: Value = serde_json::from_str(json).map_err(|e| WalletError::Json(e.into()))?;
        let mut doc = Members::new("document", value)?;

        let primary_type = doc.take("primaryType")?;
        if primary_type.as_str() != Some(primary) {
            let actual =
                primary_type.as_str().map_or_else(|| primary_type.to_string(), str::to_owned);
            return Err(WalletError::WrongPrimaryType { expected: primary, actual });
        }

        let mut types = Members::new("types", doc.take("types")?)?;
        check_type(&mut types, "EIP712Domain", &DOMAIN_FIELDS)?;
        check_type(&mut types, primary, fields)?;
        types.finish()?;

        let mut domain = Members::new("domain", doc.take("domain")?)?;
        for (field, expected) in [("name", DOMAIN_NAME), ("version", DOMAIN_VERSION)] {
            let v = domain.take(field)?;
            if v.as_str() != Some(expected) {
                return Err(WalletError::WrongDomain { field, expected, actual: v.to_string() });
            }
        }
        let network = Eip712Network {
            chain_id: domain.uint("chainId", 64)?,
            verifying_contract: domain.address("verifyingContract")?,
        };
        domain.finish()?;

        let sig = doc.take("signature")?;
        let signature = sig.as_str().and_then(parse_signature).ok_or(WalletError::BadSignature)?;

        let message = Members::new("message", doc.take("message")?)?;
        doc.finish()?;
        // Members are taken in `fields` order by the caller; reject extras now.
        let mut extra = message.map.keys().filter(|k| !fields.iter().any(|(n, _)| n == k));
        if let Some(field) = extra.next() {
            return Err(WalletError::UnknownField { object: "message", field: field.clone() });
        }
        Ok(Document { network, message, signature })
    }
}

fn check_type(
    types: &mut Members,
    name: &'static str,
    expected: &[(&str, &str)],
) -> Result<(), WalletError> {
    let actual = types.take(name)?;
    let parsed: Option<Vec<(&str, &str)>> = actual.as_array().and_then(|items| {
        items
            .iter()
            .map(|item| {
                let o = item.as_object().filter(|o| o.len() == 2)?;
                Some((o.get("name")?.as_str()?, o.get("type")?.as_str()?))
            })
            .collect()
    });
    if parsed.as_deref() == Some(expected) {
        return Ok(());
    }
    let render = |fields: &[(&str, &str)]| {
        let inner: Vec<String> = fields.iter().map(|(n, t)| format!("{t} {n}")).collect();
        format!("{name}({})", inner.join(","))
    };
    Err(WalletError::TypeMismatch {
        name,
        expected: render(expected),
        actual: parsed.map_or_else(|| actual.to_string(), |p| render(&p)),
    })
}

fn parse_signature(s: &str) -> Option<Signature> {
    let digits = s.strip_prefix("0x")?;
    let mut out = [0u8; 65];
    hex::decode_to_slice(digits, &mut out).ok()?;
    if out[64] < 2 {
        out[64] += 27;
    }
    Some(Signature(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Policy, keys};

    const T0: u64 = 1_700_000_000;

    fn key(n: u8) -> k256::ecdsa::SigningKey {
        let mut k = [0u8; 32];
        k[31] = n;
        k256::ecdsa::SigningKey::from_bytes(&k.into()).unwrap()
    }

    fn cert() -> SignedDelegation {
        SignedDelegation::issue(
            &key(1),
            Eip712Network::arbitrum_one(),
            DelegationTerms {
                delegate: keys::address(&key(2)),
                role: Role::Orchestrator,
                region: "us-east".into(),
                not_before: T0,
                not_after: T0 + 3600,
                nonce: 1,
            },
        )
        .unwrap()
    }

    fn exported() -> Value {
        export_delegation(&cert())
    }

    fn import_edited(edit: impl FnOnce(&mut Value)) -> Result<SignedDelegation, WalletError> {
        let mut v = exported();
        edit(&mut v);
        import_delegation(&v.to_string())
    }

    #[test]
    fn export_has_the_eth_sign_typed_data_v4_shape() {
        let v = exported();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["domain", "types", "primaryType", "message", "signature"]);
        assert_eq!(
            v["domain"],
            json!({
                "name": "Vouch Telemetry",
                "version": "1",
                "chainId": 42161,
                "verifyingContract": "0x35Bcf3c30594191d53231E4FF333E8A770453e40",
            })
        );
        assert_eq!(v["types"]["Delegation"][2], json!({"name": "role", "type": "uint8"}));
        assert_eq!(v["message"]["principal"], "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf");
        assert_eq!(v["message"]["notBefore"], "1700000000");
        assert_eq!(v["message"]["role"], 0);
        assert_eq!(v["signature"].as_str().unwrap().len(), 132);
    }

    #[test]
    fn round_trip_and_verify() {
        let back = import_delegation(&exported().to_string()).unwrap();
        assert_eq!(back, cert());
        back.verify(&Eip712Network::arbitrum_one(), T0, &Policy::default()).unwrap();
        let r =
            SignedRevocation::issue(&key(1), Eip712Network::arbitrum_one(), Address([9; 20]), T0);
        let back = import_revocation(&export_revocation(&r).to_string()).unwrap();
        assert_eq!(back, r);
        back.verify(&Eip712Network::arbitrum_one()).unwrap();
    }

    #[test]
    fn lenient_where_wallets_differ() {
        let c = import_edited(|v| {
            v["message"]["notBefore"] = json!(T0);
            v["message"]["nonce"] = json!("0x1");
            v["domain"]["chainId"] = json!("42161");
            v["message"]["principal"] = json!("0x7e5f4552091a69125d5dfcb7b8c2659029395bdf");
            let s = v["signature"].as_str().unwrap().to_owned();
            let v_byte = u8::from_str_radix(&s[130..], 16).unwrap() - 27;
            v["signature"] = json!(format!("{}{:02x}", &s[..130], v_byte));
        })
        .unwrap();
        assert_eq!(c, cert());
    }

    #[test]
    fn each_error() {
        use WalletError as E;
        let big = " ".repeat(MAX_WALLET_JSON_BYTES + 1);
        assert_eq!(import_delegation(&big), Err(E::TooLarge(MAX_WALLET_JSON_BYTES + 1)));
        assert!(matches!(import_delegation("{"), Err(E::Json(_))));
        assert_eq!(import_delegation("[]"), Err(E::NotAnObject("document")));
        assert_eq!(
            import_edited(|v| v["primaryType"] = json!("Revocation")),
            Err(E::WrongPrimaryType { expected: "Delegation", actual: "Revocation".into() })
        );
        assert_eq!(
            import_revocation(&exported().to_string()),
            Err(E::WrongPrimaryType { expected: "Revocation", actual: "Delegation".into() })
        );
        let err =
            import_edited(|v| v["types"]["Delegation"][2]["type"] = json!("uint256")).unwrap_err();
        assert!(matches!(err, E::TypeMismatch { name: "Delegation", .. }));
        assert!(err.to_string().contains("uint256 role"), "{err}");
        assert!(matches!(
            import_edited(|v| v["types"]["EIP712Domain"] = json!([])),
            Err(E::TypeMismatch { name: "EIP712Domain", .. })
        ));
        assert_eq!(
            import_edited(|v| {
                v["types"].as_object_mut().unwrap().remove("EIP712Domain");
            }),
            Err(E::MissingField { object: "types", field: "EIP712Domain" })
        );
        assert_eq!(
            import_edited(|v| v["types"]["Extra"] = json!([])),
            Err(E::UnknownField { object: "types", field: "Extra".into() })
        );
        assert_eq!(
            import_edited(|v| v["domain"]["name"] = json!("Other")),
            Err(E::WrongDomain {
                field: "name",
                expected: "Vouch Telemetry",
                actual: "\"Other\"".into()
            })
        );
        assert_eq!(
            import_edited(|v| v["domain"]["salt"] = json!("0x00")),
            Err(E::UnknownField { object: "domain", field: "salt".into() })
        );
        assert_eq!(
            import_edited(|v| {
                v.as_object_mut().unwrap().remove("signature");
            }),
            Err(E::MissingField { object: "document", field: "signature" })
        );
        assert_eq!(import_edited(|v| v["signature"] = json!("0x1234")), Err(E::BadSignature));
        assert_eq!(
            import_edited(|v| v["message"]["delegate"] = json!("0x1234")),
            Err(E::BadAddress { field: "delegate", value: "\"0x1234\"".into() })
        );
        assert_eq!(
            import_edited(|v| v["message"]["role"] = json!(256)),
            Err(E::BadUint { field: "role", bits: 8, value: "256".into() })
        );
        assert_eq!(import_edited(|v| v["message"]["role"] = json!(9)), Err(E::BadRole(9)));
        for bad in [
            json!(-1),
            json!(1.5),
            json!("18446744073709551616"),
            json!("1e3"),
            json!(""),
            json!(null),
        ] {
            assert!(
                matches!(
                    import_edited(|v| v["message"]["nonce"] = bad.clone()),
                    Err(E::BadUint { field: "nonce", bits: 64, .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            import_edited(|v| v["message"]["region"] = json!(1)),
            Err(E::NotAString("region"))
        );
        assert_eq!(
            import_edited(|v| v["message"]["region"] = json!("x".repeat(65))),
            Err(E::RegionTooLong(65))
        );
        assert_eq!(
            import_edited(|v| v["message"]["admin"] = json!(true)),
            Err(E::UnknownField { object: "message", field: "admin".into() })
        );
        assert_eq!(
            import_edited(|v| {
                v["message"].as_object_mut().unwrap().remove("nonce");
            }),
            Err(E::MissingField { object: "message", field: "nonce" })
        );
        assert_eq!(import_edited(|v| v["message"] = json!([])), Err(E::NotAnObject("message")));
    }

    #[test]
    fn tampered_import_fails_verification() {
        let c = import_edited(|v| v["message"]["region"] = json!("us-west")).unwrap();
        assert!(matches!(
            c.verify(&Eip712Network::arbitrum_one(), T0, &Policy::default()),
            Err(crate::CertificateError::WrongSigner { .. })
        ));
    }
}
