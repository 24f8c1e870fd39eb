//! Bearer tokens (JWS compact form) for the HTTP API's `[api.jwt]`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// An HS256 secret long enough for the API's minimum, for tests that
/// configure `[api.jwt]` with it.
pub const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

/// A token over `claims` with header `alg`, signed by `sign` over
/// `header.payload`.
pub fn token(alg: &str, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let h = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let sig = sign(format!("{h}.{p}").as_bytes());
    format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// An HS256 token over `claims`, signed with `secret`.
pub fn hs256(secret: &[u8], claims: &Value) -> String {
    token("HS256", claims, |m| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(m);
        mac.finalize().into_bytes().to_vec()
    })
}
