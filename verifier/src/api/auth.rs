//! Bearer JWTs for restricted fields (HS256 or ES256, one pinned by configuration).
//!
//! Verification is deliberately narrow: the header's `alg` must equal the
//! configured algorithm (no `none`, no HS/ES confusion), `crit` is refused, the
//! signature is checked before any claim is read, `exp` is required. A token
//! that fails is not an error for the request: it grants nothing.

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::DecodePublicKey as _;
use serde::Deserialize;
use sha2::Sha256;

use super::config::{JwtAlgorithm, JwtConfig};

/// Tokens longer than this are refused unread.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
const MIN_HS256_SECRET: usize = 32;

/// Why the JWT configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    /// Neither or both of `key` and `key_file` are set.
    #[error("[api.jwt] needs exactly one of `key` and `key_file`")]
    KeySource,
    /// The key file could not be read.
    #[error("[api.jwt] key_file {path}: {source}")]
    KeyFile {
        /// The configured path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HS256 secret is too short to be safe.
    #[error("[api.jwt] HS256 secret must be at least {MIN_HS256_SECRET} bytes")]
    ShortSecret,
    /// The ES256 key is not a P-256 public key in PEM (SPKI).
    #[error("[api.jwt] ES256 key is not a P-256 public key PEM: {0}")]
    PublicKey(#[source] PublicKeyError),
    /// `max_lifetime_secs` is 0: no token could ever be valid.
    #[error("[api.jwt] max_lifetime_secs must be at least 1")]
    MaxLifetime,
}

/// Why the ES256 key does not load ([`JwtConfigError::PublicKey`]).
#[derive(Debug, thiserror::Error)]
pub enum PublicKeyError {
    /// The key file is not text.
    #[error("not UTF-8")]
    NotUtf8(#[source] std::string::FromUtf8Error),
    /// The PEM is not a P-256 SubjectPublicKeyInfo.
    #[error(transparent)]
    Spki(#[from] p256::pkcs8::spki::Error),
}

/// Why a presented token grants nothing (logged at debug level and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtRejection {
    /// Not three base64url parts of JSON, or too long.
    #[error("malformed token")]
    Malformed,
    /// `alg` is not the configured algorithm, or `crit` is present.
    #[error("algorithm not accepted")]
    Algorithm,
    /// The signature does not verify under the configured key.
    #[error("bad signature")]
    Signature,
    /// `exp` is missing or past.
    #[error("expired")]
    Expired,
    /// `exp` lies further ahead than `max_lifetime_secs`, or `exp - iat`
    /// exceeds it, or `iat` is not a finite time.
    #[error("lifetime longer than allowed")]
    Lifetime,
    /// `nbf` is in the future.
    #[error("not yet valid")]
    NotYetValid,
    /// `iss` or `aud` does not match the configuration.
    #[error("wrong issuer or audience")]
    Audience,
    /// Valid, but without the restricted scope.
    #[error("scope missing")]
    Scope,
}

impl JwtRejection {
    /// Every rejection, in a fixed order (the metric's label values).
    pub const ALL: [JwtRejection; 8] = [
        Self::Malformed,
        Self::Algorithm,
        Self::Signature,
        Self::Expired,
        Self::Lifetime,
        Self::NotYetValid,
        Self::Audience,
        Self::Scope,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm",
            Self::Signature => "signature",
            Self::Expired => "expired",
            Self::Lifetime => "lifetime",
            Self::NotYetValid => "not_yet_valid",
            Self::Audience => "audience",
            Self::Scope => "scope",
        }
    }
}

enum Key {
    Hs256(Vec<u8>),
    Es256(p256::ecdsa::VerifyingKey),
}

/// Checks bearer tokens against one configured key.
pub struct JwtVerifier {
    key: Key,
    scope: String,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_s: u64,
    max_lifetime_s: u64,
}

impl std::fmt::Debug for JwtVerifier {
    // The key is a secret for HS256: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier").field("scope", &self.scope).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Claims {
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    iss: Option<String>,
    aud: Option<OneOrMany>,
    scope: Option<String>,
    scp: Option<OneOrMany>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Self::One(s) => s == wanted,
            Self::Many(v) => v.iter().any(|s| s == wanted),
        }
    }
}

impl JwtVerifier {
    /// Builds the verifier, reading `key_file` if configured.
    pub fn from_config(config: &JwtConfig) -> Result<Self, JwtConfigError> {
        if config.max_lifetime_secs == 0 {
            return Err(JwtConfigError::MaxLifetime);
        }
        let material = match (&config.key, &config.key_file) {
            (Some(k), None) => k.clone().into_bytes(),
            (None, Some(path)) => std::fs::read(path).map_err(|source| {
                JwtConfigError::KeyFile { path: path.display().to_string(), source }
            })?,
            _ => return Err(JwtConfigError::KeySource),
        };
        let key = match config.algorithm {
            JwtAlgorithm::HS256 => {
                if material.len() < MIN_HS256_SECRET {
                    return Err(JwtConfigError::ShortSecret);
                }
                Key::Hs256(material)
            }
            JwtAlgorithm::ES256 => {
                let pem = String::from_utf8(material)
                    .map_err(|e| JwtConfigError::PublicKey(PublicKeyError::NotUtf8(e)))?;
                let key = p256::PublicKey::from_public_key_pem(pem.trim())
                    .map_err(|e| JwtConfigError::PublicKey(e.into()))?;
                Key::Es256(key.into())
            }
        };
        Ok(Self {
            key,
            scope: config.scope.clone(),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway_s: config.leeway_s,
            max_lifetime_s: config.max_lifetime_secs,
        })
    }

    /// Whether `headers` carry `Authorization: Bearer <token>` granting the
    /// restricted scope now. `Ok(false)`: no token at all.
    pub fn grants(&self, headers: &HeaderMap) -> Result<bool, JwtRejection> {
        let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(false) };
        let value = value.to_str().map_err(|_| JwtRejection::Malformed)?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(JwtRejection::Malformed),
        };
        let now = crate::clock::now_secs();
        self.verify(token, now).map(|()| true)
    }

    /// Checks `token` at `now_s` (Unix seconds): signature, times, issuer,
    /// audience, then the scope.
    pub fn verify(&self, token: &str, now_s: u64) -> Result<(), JwtRejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtRejection::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtRejection::Malformed);
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtRejection::Malformed);
        let header: Header =
            serde_json::from_slice(&decode(h)?).map_err(|_| JwtRejection::Malformed)?;
        let expected = match self.key {
            Key::Hs256(_) => "HS256",
            Key::Es256(_) => "ES256",
        };
        if header.alg != expected || header.crit.is_some() {
            return Err(JwtRejection::Algorithm);
        }
        let signature = decode(s)?;
        // The signed input is the two encoded parts exactly as sent.
        let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
        match &self.key {
            Key::Hs256(secret) => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(secret).map_err(|_| JwtRejection::Signature)?;
                mac.update(signed);
                // Constant-time comparison.
                mac.verify_slice(&signature).map_err(|_| JwtRejection::Signature)?;
            }
            Key::Es256(key) => {
                let sig = p256::ecdsa::Signature::from_slice(&signature)
                    .map_err(|_| JwtRejection::Signature)?;
                key.verify(signed, &sig).map_err(|_| JwtRejection::Signature)?;
            }
        }
        let claims: Claims =
            serde_json::from_slice(&decode(p)?).map_err(|_| JwtRejection::Malformed)?;
        let now = now_s as f64;
        let leeway = self.leeway_s as f64;
        let exp = match claims.exp {
            Some(exp) if exp.is_finite() && now <= exp + leeway => exp,
            _ => return Err(JwtRejection::Expired),
        };
        // A token valid for ever is a leaked key's gift: cap how far ahead it may reach.
        let max_lifetime = self.max_lifetime_s as f64;
        if exp - now > max_lifetime + leeway {
            return Err(JwtRejection::Lifetime);
        }
        if let Some(iat) = claims.iat
            && (!iat.is_finite() || exp - iat > max_lifetime)
        {
            return Err(JwtRejection::Lifetime);
        }
        if let Some(nbf) = claims.nbf
            && (!nbf.is_finite() || now + leeway < nbf)
        {
            return Err(JwtRejection::NotYetValid);
        }
        if let Some(issuer) = &self.issuer
            && claims.iss.as_deref() != Some(issuer.as_str())
        {
            return Err(JwtRejection::Audience);
        }
        if let Some(audience) = &self.audience
            && !claims.aud.as_ref().is_some_and(|a| a.contains(audience))
        {
            return Err(JwtRejection::Audience);
        }
        let in_scope =
            claims.scope.as_deref().is_some_and(|s| s.split(' ').any(|x| x == self.scope))
                || claims.scp.as_ref().is_some_and(|s| s.contains(&self.scope));
        if in_scope { Ok(()) } else { Err(JwtRejection::Scope) }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn hs256(header: &str, claims: &str, secret: &str) -> String {
        let h = URL_SAFE_NO_PAD.encode(header);
        let p = URL_SAFE_NO_PAD.encode(claims);
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::from_config(&JwtConfig {
            algorithm: JwtAlgorithm::HS256,
            key: Some(SECRET.into()),
            key_file: None,
            scope: "sla:restricted".into(),
            issuer: None,
            audience: Some("vouch".into()),
            leeway_s: 0,
            max_lifetime_secs: 86_400,
        })
        .unwrap()
    }

    #[test]
    fn each_check_refuses_for_its_reason() {
        let v = verifier();
        let alg = r#"{"alg":"HS256","typ":"JWT"}"#;
        let good = r#"{"exp":2000,"aud":["x","vouch"],"scope":"a sla:restricted"}"#;
        assert_eq!(v.verify(&hs256(alg, good, SECRET), 1000), Ok(()));
        assert_eq!(v.verify(&hs256(alg, good, SECRET), 2001), Err(JwtRejection::Expired));
        let wrong = "fedcba9876543210fedcba9876543210";
        assert_eq!(v.verify(&hs256(alg, good, wrong), 1000), Err(JwtRejection::Signature));
        let none = r#"{"alg":"none"}"#;
        assert_eq!(v.verify(&hs256(none, good, SECRET), 1000), Err(JwtRejection::Algorithm));
        let crit = r#"{"alg":"HS256","crit":["b64"]}"#;
        assert_eq!(v.verify(&hs256(crit, good, SECRET), 1000), Err(JwtRejection::Algorithm));
        let no_exp = r#"{"aud":"vouch","scope":"sla:restricted"}"#;
        assert_eq!(v.verify(&hs256(alg, no_exp, SECRET), 1000), Err(JwtRejection::Expired));
        let nbf = r#"{"exp":3000,"nbf":1500,"aud":"vouch","scp":["sla:restricted"]}"#;
        assert_eq!(v.verify(&hs256(alg, nbf, SECRET), 1000), Err(JwtRejection::NotYetValid));
        assert_eq!(v.verify(&hs256(alg, nbf, SECRET), 1600), Ok(()));
        let aud = r#"{"exp":2000,"aud":"other","scope":"sla:restricted"}"#;
        assert_eq!(v.verify(&hs256(alg, aud, SECRET), 1000), Err(JwtRejection::Audience));
        let scope = r#"{"exp":2000,"aud":"vouch","scope":"sla:restricted:x sla"}"#;
        assert_eq!(v.verify(&hs256(alg, scope, SECRET), 1000), Err(JwtRejection::Scope));
        for junk in ["", "a.b", "a.b.c.d", "!!.??.**", &"x".repeat(MAX_TOKEN_BYTES + 1)] {
            assert_eq!(v.verify(junk, 1000), Err(JwtRejection::Malformed), "{junk:.20}");
        }
    }

    #[test]
    fn lifetimes_beyond_the_cap_are_refused() {
        let v = verifier();
        let alg = r#"{"alg":"HS256","typ":"JWT"}"#;
        let now = 1_700_000_000u64;
        let token = |claims: String| hs256(alg, &claims, SECRET);
        let claims = |extra: &str| format!(r#"{{"aud":"vouch","scope":"sla:restricted",{extra}}}"#);
        // Never expires: the `exp: 1e308` of a hostile issuer (or a leaked key).
        assert_eq!(v.verify(&token(claims(r#""exp":1e308"#)), now), Err(JwtRejection::Lifetime));
        let day = now + 86_400;
        assert_eq!(v.verify(&token(claims(&format!(r#""exp":{day}"#))), now), Ok(()));
        let later = day + 1;
        assert_eq!(
            v.verify(&token(claims(&format!(r#""exp":{later}"#))), now),
            Err(JwtRejection::Lifetime)
        );
        // Issued long ago for long: refused even though `exp` is close.
        let (iat, exp) = (now - 86_400, now + 10);
        assert_eq!(
            v.verify(&token(claims(&format!(r#""exp":{exp},"iat":{iat}"#))), now),
            Err(JwtRejection::Lifetime)
        );
        let iat = now - 60;
        assert_eq!(v.verify(&token(claims(&format!(r#""exp":{exp},"iat":{iat}"#))), now), Ok(()));
        // Out-of-range numbers and wrong types never parse as times.
        for bad in [r#""exp":1e400"#, r#""exp":"never""#, r#""exp":2000,"iat":"x""#] {
            assert_eq!(v.verify(&token(claims(bad)), now), Err(JwtRejection::Malformed), "{bad}");
        }
        let mut c =
            JwtConfig { max_lifetime_secs: 0, ..JwtConfig::inline(JwtAlgorithm::HS256, SECRET) };
        assert!(matches!(JwtVerifier::from_config(&c), Err(JwtConfigError::MaxLifetime)));
        c.max_lifetime_secs = 1;
        assert!(JwtVerifier::from_config(&c).is_ok());
    }

    #[test]
    fn hs_es_confusion_is_refused_both_ways() {
        use p256::ecdsa::signature::Signer as _;
        use p256::pkcs8::{EncodePublicKey as _, LineEnding};

        let signing = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
        let pem = signing.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
        let es = JwtVerifier::from_config(&JwtConfig {
            leeway_s: 0,
            ..JwtConfig::inline(JwtAlgorithm::ES256, pem.clone())
        })
        .unwrap();
        let claims = r#"{"exp":2000,"scope":"sla:restricted"}"#;
        let es256 = |header: &str| {
            let h = URL_SAFE_NO_PAD.encode(header);
            let p = URL_SAFE_NO_PAD.encode(claims);
            let sig: p256::ecdsa::Signature = signing.sign(format!("{h}.{p}").as_bytes());
            format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
        };
        assert_eq!(es.verify(&es256(r#"{"alg":"ES256"}"#), 1000), Ok(()));
        // An HMAC keyed with the public key: the classic confusion.
        let confused = hs256(r#"{"alg":"HS256"}"#, claims, &pem);
        assert_eq!(es.verify(&confused, 1000), Err(JwtRejection::Algorithm));
        // The same HMAC under a header claiming ES256: not an ECDSA signature.
        let relabelled = hs256(r#"{"alg":"ES256"}"#, claims, &pem);
        assert_eq!(es.verify(&relabelled, 1000), Err(JwtRejection::Signature));
        // An HS256 server shown a (valid) ES256 token.
        assert_eq!(
            verifier().verify(&es256(r#"{"alg":"ES256"}"#), 1000),
            Err(JwtRejection::Algorithm)
        );
        for alg in [r#"{"alg":"hs256"}"#, r#"{"alg":"none"}"#, r#"{"alg":"NONE"}"#, "{}"] {
            let token = hs256(alg, claims, SECRET);
            let want = if alg == "{}" { JwtRejection::Malformed } else { JwtRejection::Algorithm };
            assert_eq!(verifier().verify(&token, 1000), Err(want), "{alg}");
        }
    }

    #[test]
    fn short_secrets_and_bad_pems_are_configuration_errors() {
        let mut c = JwtConfig {
            algorithm: JwtAlgorithm::HS256,
            key: Some("short".into()),
            key_file: None,
            scope: "s".into(),
            issuer: None,
            audience: None,
            leeway_s: 0,
            max_lifetime_secs: 86_400,
        };
        assert!(matches!(JwtVerifier::from_config(&c), Err(JwtConfigError::ShortSecret)));
        c.algorithm = JwtAlgorithm::ES256;
        c.key = Some("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----".into());
        assert!(matches!(JwtVerifier::from_config(&c), Err(JwtConfigError::PublicKey(_))));
        c.key = None;
        assert!(matches!(JwtVerifier::from_config(&c), Err(JwtConfigError::KeySource)));
    }
}
