//! `[api]` in the node configuration: who may read restricted fields, how
//! fast a client may ask, which origins may call and which pages may embed.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The Livepeer Explorer, which embeds the dashboard and may call the API.
pub const EXPLORER_ORIGIN: &str = "https://explorer.livepeer.org";

/// The scope a JWT must carry to see restricted fields (`by_gateway`).
pub const RESTRICTED_SCOPE: &str = "sla:restricted";

/// HTTP API settings (`[api]`). Every field has a working default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// JWT verification for restricted fields; absent: restricted fields are never served.
    pub jwt: Option<JwtConfig>,
    /// Per-client request budget.
    pub rate_limit: RateLimitConfig,
    /// Origins allowed to call the API from a browser (exact `scheme://host[:port]`,
    /// or `"*"` for any). Others get no CORS headers, so their browsers refuse the answer.
    pub cors_origins: Vec<String>,
    /// CSP `frame-ancestors` sources: who may embed the dashboard in a frame.
    pub frame_ancestors: Vec<String>,
    /// SLA source calls running at once; beyond it requests are shed with 503
    /// `unavailable` (counted in `vouch_api_shed_total`) instead of queueing.
    pub max_in_flight: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            jwt: None,
            rate_limit: RateLimitConfig::default(),
            cors_origins: vec![EXPLORER_ORIGIN.to_owned()],
            frame_ancestors: vec!["'self'".to_owned(), EXPLORER_ORIGIN.to_owned()],
            max_in_flight: 64,
        }
    }
}

/// A JWT signature algorithm the API accepts (exactly one, pinned by configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret of at least 32 bytes.
    HS256,
    /// ECDSA P-256 with SHA-256; the key is the issuer's public key (PEM, SPKI).
    ES256,
}

/// How bearer tokens are checked. A token that fails any check is treated as
/// absent: the restricted fields are omitted, the request still succeeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The only algorithm accepted; a token naming another (or `none`) is refused.
    pub algorithm: JwtAlgorithm,
    /// The key inline: the HS256 secret (UTF-8 bytes) or the ES256 public key PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The key read from a file instead (same content as `key`; exactly one of the two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// The scope that unlocks restricted fields (in `scope`, space-separated, or `scp`, a list).
    #[serde(default = "default_scope")]
    pub scope: String,
    /// When set, `iss` must equal it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// When set, `aud` must be or contain it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    #[serde(default = "default_leeway")]
    pub leeway_s: u64,
    /// The longest lifetime a token may claim, seconds: `exp` at most this
    /// far from now (plus leeway) and, with `iat`, `exp - iat` at most this.
    /// A token minted to never expire (`exp: 1e308`) is refused (`lifetime`).
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime_secs: u64,
}

impl JwtConfig {
    /// `algorithm` with the key inline and every other field at its default
    /// (the restricted scope, no issuer or audience, 30 s leeway, one day's
    /// lifetime at most).
    pub fn inline(algorithm: JwtAlgorithm, key: impl Into<String>) -> Self {
        Self {
            algorithm,
            key: Some(key.into()),
            key_file: None,
            scope: default_scope(),
            issuer: None,
            audience: None,
            leeway_s: default_leeway(),
            max_lifetime_secs: default_max_lifetime(),
        }
    }
}

fn default_scope() -> String {
    RESTRICTED_SCOPE.to_owned()
}

fn default_leeway() -> u64 {
    30
}

/// One day: an issuer refreshes tokens far more often than that.
fn default_max_lifetime() -> u64 {
    86_400
}

/// A token bucket per client address (IPv4 address, or IPv6 /64).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second per client; 0 disables the limit.
    pub per_second: f64,
    /// Requests a client may make at once after being idle.
    pub burst: u32,
    /// Clients tracked at most; past it the least recently seen half is
    /// forgotten (counted in `vouch_api_rate_limit_evictions_total`).
    pub max_clients: usize,
    /// A header set by a trusted reverse proxy naming the client (e.g.
    /// `x-forwarded-for`; its right-most address is used). Unset: the peer address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip_header: Option<String>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self { per_second: 10.0, burst: 60, max_clients: 100_000, client_ip_header: None }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_allow_the_explorer_and_parse_from_toml() {
        let c: ApiConfig = toml::from_str("").unwrap();
        assert_eq!(c, ApiConfig::default());
        assert!(c.frame_ancestors.iter().any(|a| a == EXPLORER_ORIGIN));
        let c: ApiConfig = toml::from_str(
            "cors_origins = []\n[jwt]\nalgorithm = \"HS256\"\nkey = \"k\"\n[rate_limit]\nburst = 5\n",
        )
        .unwrap();
        let jwt = c.jwt.unwrap();
        assert_eq!(jwt.scope, RESTRICTED_SCOPE);
        assert_eq!(jwt.algorithm, JwtAlgorithm::HS256);
        assert_eq!(c.rate_limit.burst, 5);
        assert_eq!(c.rate_limit.per_second, 10.0);
    }

    #[test]
    fn the_readme_example_parses() {
        // The `[api]` block of README.md ("HTTP API and dashboard"), as the node nests it.
        #[derive(Deserialize)]
        struct Node {
            api: ApiConfig,
        }
        let readme = include_str!("../../../README.md");
        let start = readme.find("```toml\n[api]\n").unwrap() + "```toml\n".len();
        let block = &readme[start..][..readme[start..].find("```").unwrap()];
        let node: Node = toml::from_str(block).unwrap();
        let jwt = node.api.jwt.unwrap();
        assert_eq!(jwt.algorithm, JwtAlgorithm::ES256);
        assert_eq!(jwt.max_lifetime_secs, 86_400);
        assert_eq!(node.api.max_in_flight, 64);
        assert_eq!(node.api.rate_limit.max_clients, 100_000);
    }
}
