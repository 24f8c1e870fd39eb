//! The SLA HTTP API end to end over real HTTP on 127.0.0.1: JWT gating of the
//! restricted field, JSON errors (400, 404, 405, 429), CORS, the dashboard's
//! Content-Security-Policy, metrics, and every live answer validated against
//! the served OpenAPI document. The SLA state is `api_double::FixtureSource`,
//! a test double standing in for the SLA engine (which has its own tests).
#![allow(clippy::unwrap_used)]

mod api_double;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use serde_json::{Value, json};
use sha2::Sha256;
use vouch_verifier::api::{
    Api, ApiConfig, ApiError, JwtAlgorithm, JwtConfig, Params, ROUTES, RateLimitConfig, SlaSource,
};

use api_double::FixtureSource;
use vouch_testkit::jwt::{hs256, token};
use vouch_testkit::{now_secs, openapi};

/// Where the tests serve: a free port on 127.0.0.1.
const ANY_PORT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
const SECRET: &str = "test-secret-test-secret-test-secret!";
const A1: &str = "0x1111111111111111111111111111111111111111";
const EXPLORER: &str = "https://explorer.livepeer.org";

fn hs256_config() -> ApiConfig {
    ApiConfig {
        jwt: Some(JwtConfig {
            algorithm: JwtAlgorithm::HS256,
            key: Some(SECRET.into()),
            key_file: None,
            scope: "sla:restricted".into(),
            issuer: None,
            audience: None,
            leeway_s: 0,
            max_lifetime_secs: 86_400,
        }),
        ..ApiConfig::default()
    }
}

impl FixtureSource {
    /// The last call's parameters for `method`.
    fn last(&self, method: &str) -> Option<(Params, bool)> {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.iter().rev().find(|c| c.0 == method).map(|c| (c.1.clone(), c.2))
    }
}

struct Server {
    base: String,
    source: Arc<FixtureSource>,
    api: Api,
    client: reqwest::Client,
}

impl Server {
    async fn start(source: FixtureSource, config: &ApiConfig) -> Self {
        let source = Arc::new(source);
        let api = Api::new(Arc::clone(&source) as Arc<dyn SlaSource>, config).unwrap();
        let addr: SocketAddr = api_double::serve(&api, ANY_PORT).await;
        Self { base: format!("http://{addr}"), source, api, client: reqwest::Client::new() }
    }

    async fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.client.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap();
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, headers, value)
    }

    async fn detail(&self, bearer: Option<&str>) -> Value {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.as_deref().map(|a| vec![("authorization", a)]).unwrap_or_default();
        let (status, _, body) = self.get(&format!("/v1/sla/orchestrators/{A1}"), &headers).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

fn assert_error(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
    want: u16,
    code: &str,
) {
    assert_eq!(status, want, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

#[tokio::test]
async fn restricted_field_needs_a_valid_token_with_the_scope() {
    let server = Server::start(FixtureSource::new(), &hs256_config()).await;
    let good = json!({"exp": now_secs() + 600, "scope": "sla:read sla:restricted"});

    let valid = server.detail(Some(&hs256(SECRET.as_bytes(), &good))).await;
    assert_eq!(valid["by_gateway"][0]["attempts"], 118, "{valid}");
    assert!(
        server.source.last("orchestrator").unwrap().1,
        "the source was asked for restricted data"
    );

    let wrong_key = hs256(b"another-secret-another-secret-another", &good);
    let expired =
        hs256(SECRET.as_bytes(), &json!({"exp": now_secs() - 60, "scope": "sla:restricted"}));
    let no_scope = hs256(SECRET.as_bytes(), &json!({"exp": now_secs() + 600, "scope": "sla:read"}));
    let alg_none = token("none", &good, |_| Vec::new());
    let cases = [
        ("no token", None),
        ("wrong key", Some(wrong_key.as_str())),
        ("expired", Some(expired.as_str())),
        ("wrong scope", Some(no_scope.as_str())),
        ("alg none", Some(alg_none.as_str())),
        ("garbage", Some("not.a.jwt")),
    ];
    for (name, bearer) in cases {
        let body = server.detail(bearer).await;
        assert!(body.get("by_gateway").is_none(), "{name}: {body}");
        assert_eq!(body["summary"]["address"], A1, "{name}: the rest is served");
        assert!(!server.source.last("orchestrator").unwrap().1, "{name}");
    }
    let metrics = vouch_net::metrics::encode_one(server.api.metrics());
    for reason in ["signature", "expired", "scope", "algorithm", "malformed"] {
        assert!(
            metrics.contains(&format!("vouch_api_jwt_rejected_total{{reason=\"{reason}\"}} 1")),
            "{reason}\n{metrics}"
        );
    }
}

#[tokio::test]
async fn es256_tokens_verify_and_hmac_with_the_public_key_does_not() {
    let signing = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    let pem = signing.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("issuer.pem");
    std::fs::write(&key_file, &pem).unwrap();
    let config = ApiConfig {
        jwt: Some(JwtConfig {
            algorithm: JwtAlgorithm::ES256,
            key: None,
            key_file: Some(key_file),
            scope: "sla:restricted".into(),
            issuer: Some("https://issuer.example".into()),
            audience: Some("vouch".into()),
            leeway_s: 0,
            max_lifetime_secs: 86_400,
        }),
        ..ApiConfig::default()
    };
    let server = Server::start(FixtureSource::new(), &config).await;
    let claims = json!({"exp": now_secs() + 600, "iss": "https://issuer.example", "aud": ["vouch"], "scp": ["sla:restricted"]});
    let es256 = |claims: &Value| {
        token("ES256", claims, |m| {
            let sig: p256::ecdsa::Signature = signing.sign(m);
            sig.to_bytes().to_vec()
        })
    };
    assert!(server.detail(Some(&es256(&claims))).await.get("by_gateway").is_some());
    // Algorithm confusion: an HMAC keyed with the (public) PEM must not pass.
    let confused = hs256(pem.as_bytes(), &claims);
    assert!(server.detail(Some(&confused)).await.get("by_gateway").is_none());
    let mut other_aud = claims.clone();
    other_aud["aud"] = json!("someone-else");
    assert!(server.detail(Some(&es256(&other_aud))).await.get("by_gateway").is_none());
}

/// `vouch_api_jwt_rejected_total{reason}` of `api` now.
fn jwt_rejected(api: &Api, reason: &str) -> u64 {
    let metrics = vouch_net::metrics::encode_one(api.metrics());
    let prefix = format!("vouch_api_jwt_rejected_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or_else(|| panic!("no {reason} in\n{metrics}"), |v| v.parse().unwrap())
}

/// Every hostile token the API is shown over HTTP: the restricted field
/// stays hidden, the rest is served, and each is counted under its stable
/// reason.
#[tokio::test]
async fn hostile_tokens_unlock_nothing_and_are_counted_by_reason() {
    let signing = p256::ecdsa::SigningKey::from_slice(&[5u8; 32]).unwrap();
    let pem = signing.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    let jwt = JwtConfig {
        leeway_s: 0,
        max_lifetime_secs: 3_600,
        ..JwtConfig::inline(JwtAlgorithm::ES256, pem.clone())
    };
    let es_config = ApiConfig { jwt: Some(jwt), ..ApiConfig::default() };
    let es = Server::start(FixtureSource::new(), &es_config).await;
    let hs = Server::start(FixtureSource::new(), &hs256_config()).await;
    let es256 = |claims: &Value| {
        token("ES256", claims, |m| {
            let sig: p256::ecdsa::Signature = signing.sign(m);
            sig.to_bytes().to_vec()
        })
    };
    let claims = |extra: Value| {
        let mut c = json!({"exp": now_secs() + 600, "scope": "sla:restricted"});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    let good = claims(json!({}));
    assert!(es.detail(Some(&es256(&good))).await.get("by_gateway").is_some(), "the control");
    // An HS256 token signed with the ES256 public key as its secret, and the
    // same MAC relabelled ES256.
    let hs_with_public_key = hs256(pem.as_bytes(), &good);
    let relabelled = {
        let mut parts: Vec<String> = hs_with_public_key.split('.').map(str::to_owned).collect();
        parts[0] = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256"}).to_string());
        let mut mac = Hmac::<Sha256>::new_from_slice(pem.as_bytes()).unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        parts[2] = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        parts.join(".")
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("alg none", token("none", &good, |_| Vec::new()), "algorithm"),
        ("HS256 keyed with the ES256 public key", hs_with_public_key, "algorithm"),
        ("that MAC labelled ES256", relabelled, "signature"),
        ("expired", es256(&claims(json!({"exp": now_secs() - 60}))), "expired"),
        ("exp 1e308", es256(&claims(json!({"exp": 1e308}))), "lifetime"),
        ("exp past max_lifetime", es256(&claims(json!({"exp": now_secs() + 7_200}))), "lifetime"),
        (
            "exp - iat past max_lifetime",
            es256(&claims(json!({"iat": now_secs() - 7_200}))),
            "lifetime",
        ),
        ("nbf ahead", es256(&claims(json!({"nbf": now_secs() + 300}))), "not_yet_valid"),
        ("wrong scope", es256(&claims(json!({"scope": "sla:read"}))), "scope"),
        ("base64 with padding", format!("{}=", es256(&good)), "malformed"),
        ("not base64", "e30.e30.!!".to_owned(), "malformed"),
        ("oversized", format!("{}.{}.x", "e".repeat(9_000), "e"), "malformed"),
    ];
    let reasons = ["algorithm", "signature", "expired", "lifetime", "not_yet_valid", "scope"];
    let before: Vec<u64> =
        reasons.iter().chain(&["malformed"]).map(|r| jwt_rejected(&es.api, r)).collect();
    for (name, bearer, _) in &cases {
        let body = es.detail(Some(bearer)).await;
        assert!(body.get("by_gateway").is_none(), "{name}: {body}");
        assert_eq!(body["summary"]["address"], A1, "{name}: the rest is served");
        assert!(!es.source.last("orchestrator").unwrap().1, "{name}: asked restricted");
    }
    for (i, reason) in reasons.iter().chain(&["malformed"]).enumerate() {
        let want = cases.iter().filter(|c| c.2 == *reason).count() as u64;
        assert_eq!(jwt_rejected(&es.api, reason) - before[i], want, "{reason}");
    }
    // The other way round: a valid ES256 token shown to an HS256 server.
    let body = hs.detail(Some(&es256(&good))).await;
    assert!(body.get("by_gateway").is_none(), "{body}");
    assert_eq!(jwt_rejected(&hs.api, "algorithm"), 1);
}

#[tokio::test]
async fn a_source_that_leaks_the_restricted_field_is_stopped_at_the_edge() {
    let source = FixtureSource { leak_restricted: true, ..FixtureSource::new() };
    let server = Server::start(source, &hs256_config()).await;
    let body = server.detail(None).await;
    assert!(body.get("by_gateway").is_none(), "{body}");
    assert_eq!(body["series"].as_array().unwrap().len(), 57);
}

#[tokio::test]
async fn capabilities_show_gpu_ids_memory_and_uri_only_with_the_scope() {
    let path = format!("/v1/orchestrators/{A1}/capabilities");
    let token =
        hs256(SECRET.as_bytes(), &json!({"exp": now_secs() + 600, "scope": "sla:restricted"}));
    let unscoped = hs256(SECRET.as_bytes(), &json!({"exp": now_secs() + 600, "scope": "other"}));
    for leak in [false, true] {
        let source = FixtureSource { leak_restricted: leak, ..FixtureSource::new() };
        let server = Server::start(source, &hs256_config()).await;
        for bearer in [None, Some(format!("Bearer {unscoped}"))] {
            let headers: Vec<(&str, &str)> =
                bearer.iter().map(|a| ("authorization", a.as_str())).collect();
            let (status, h, body) = server.get(&path, &headers).await;
            assert_eq!(status, 200);
            assert!(body.get("restricted").is_none(), "leak={leak}: {body}");
            assert_eq!(
                body["models"][0]["gpus"],
                json!([{"name": "NVIDIA GeForce RTX 4090", "count": 2}])
            );
            assert_eq!(h.get("cache-control").unwrap(), "public, max-age=5");
        }
        let auth = format!("Bearer {token}");
        let (status, h, body) = server.get(&path, &[("authorization", &auth)]).await;
        assert_eq!(status, 200);
        assert_eq!(body["restricted"]["orch_uri"], "https://orch-1.example:8935");
        assert_eq!(body["restricted"]["gpus"][0]["id"], "GPU-a8d13655-197b-2226-d09f-b4b81e07504b");
        assert_eq!(h.get("cache-control").unwrap(), "private, no-store");
    }
    let server = Server::start(FixtureSource::new(), &hs256_config()).await;
    let unknown = format!("/v1/orchestrators/0x{}/capabilities", "5".repeat(40));
    let (status, _, body) = server.get(&unknown, &[]).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _, body) = server.get("/v1/orchestrators/0xnope/capabilities", &[]).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "bad_request");
}

#[tokio::test]
async fn bad_parameters_are_400_json_and_reach_the_source_unchanged() {
    let server = Server::start(FixtureSource::new(), &ApiConfig::default()).await;
    let (status, _, body) = server
        .get(
            "/v1/sla/orchestrators?window=24h&region=FRA&model_id=streamdiffusion&origin=synthetic",
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["window"]["name"], "24h");
    let (params, _) = server.source.last("orchestrators").unwrap();
    assert_eq!(params["region"], "FRA");
    assert_eq!(params["model_id"], "streamdiffusion");
    assert_eq!(params["origin"], "synthetic");

    for path in [
        "/v1/sla/orchestrators?window=2h",
        "/v1/sla/orchestrators?origin=everything",
        "/v1/sla/orchestrators?colour=blue",
        "/v1/sla/orchestrators?window=1h&window=24h",
        "/v1/sla/orchestrators?region=%FF%FE",
        "/v1/network/demand?window=forever",
        "/v1/sla/orchestrators/not-an-address",
        "/v1/sla/orchestrators/0x1111?window=1h",
        "/api/aggregated_stats?window=1y",
        "/v1/models?window=1h&window=1h",
    ] {
        let (status, headers, body) = server.get(path, &[]).await;
        assert_error(status, &headers, &body, 400, "bad_request");
        let _ = path;
    }
}

#[tokio::test]
async fn unknown_paths_addresses_and_methods_are_json() {
    let server = Server::start(FixtureSource::new(), &ApiConfig::default()).await;
    for path in [
        "/nope",
        "/v1",
        "/v1/sla/orchestrators/0x1111111111111111111111111111111111111111/x",
        "/dashboard/secret.txt",
    ] {
        let (status, headers, body) = server.get(path, &[]).await;
        assert_error(status, &headers, &body, 404, "not_found");
    }
    let unseen = format!("/v1/sla/orchestrators/0x{}", "0".repeat(40));
    let (status, headers, body) = server.get(&unseen, &[]).await;
    assert_error(status, &headers, &body, 404, "not_found");

    let resp = server.client.post(format!("{}/v1/models", server.base)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn the_rate_limit_answers_429_json_and_counts() {
    let config = ApiConfig {
        // Three at once, then one per 1000 s: no refill during the test.
        rate_limit: RateLimitConfig { per_second: 0.001, burst: 3, ..RateLimitConfig::default() },
        ..ApiConfig::default()
    };
    let server = Server::start(FixtureSource::new(), &config).await;
    for _ in 0..3 {
        assert_eq!(server.get("/v1/regions", &[]).await.0, 200);
    }
    let (status, headers, body) = server.get("/v1/regions", &[("origin", EXPLORER)]).await;
    assert_error(status, &headers, &body, 429, "rate_limited");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_eq!(headers["access-control-allow-origin"], EXPLORER, "a browser can read the 429");

    let metrics = vouch_net::metrics::encode_one(server.api.metrics());
    assert!(metrics.contains("vouch_api_rate_limited_total 1\n"), "{metrics}");
    assert!(
        metrics.contains("vouch_api_requests_total{route=\"/v1/regions\",status=\"200\"} 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vouch_api_requests_total{route=\"/v1/regions\",status=\"429\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("vouch_api_rate_limit_evictions_total 0\n"), "{metrics}");
}

#[tokio::test]
async fn cors_headers_only_for_allowed_origins() {
    let config = ApiConfig {
        cors_origins: vec![EXPLORER.into(), "http://localhost:3000".into()],
        ..ApiConfig::default()
    };
    let server = Server::start(FixtureSource::new(), &config).await;
    let (_, headers, _) = server.get("/v1/models", &[("origin", EXPLORER)]).await;
    assert_eq!(headers["access-control-allow-origin"], EXPLORER);
    assert!(headers.get_all("vary").iter().any(|v| v == "origin"));
    let (_, headers, _) = server.get("/v1/models", &[("origin", "https://evil.example")]).await;
    assert!(headers.get("access-control-allow-origin").is_none());
    let (_, headers, _) = server.get("/v1/models", &[]).await;
    assert!(headers.get("access-control-allow-origin").is_none());

    let preflight = |origin: &'static str| {
        server
            .client
            .request(reqwest::Method::OPTIONS, format!("{}/v1/sla/orchestrators/{A1}", server.base))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("http://localhost:3000").await.unwrap();
    assert_eq!(ok.status().as_u16(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], "http://localhost:3000");
    assert_eq!(ok.headers()["access-control-allow-headers"], "authorization");
    assert!(ok.headers().get("access-control-allow-credentials").is_none());
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    assert!(refused.headers().get("access-control-allow-methods").is_none());
}

#[tokio::test]
async fn the_dashboard_is_served_with_its_frame_ancestors() {
    let server = Server::start(FixtureSource::new(), &ApiConfig::default()).await;
    let resp = server.client.get(format!("{}/", server.base)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors 'self' https://explorer.livepeer.org"), "{csp}");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert!(resp.text().await.unwrap().contains("dashboard/app.js"));
    for (path, ctype) in [
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
        ("/dashboard/style.css", "text/css; charset=utf-8"),
    ] {
        let resp = server.client.get(format!("{}{path}", server.base)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], ctype);
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    }

    let config = ApiConfig {
        frame_ancestors: vec!["https://partner.example".into()],
        ..ApiConfig::default()
    };
    let server = Server::start(FixtureSource::new(), &config).await;
    let resp = server.client.get(format!("{}/", server.base)).send().await.unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.ends_with("frame-ancestors https://partner.example"), "{csp}");
}

#[test]
fn misconfiguration_is_refused_at_start() {
    let source: Arc<dyn SlaSource> = Arc::new(FixtureSource::new());
    let mut short = hs256_config();
    if let Some(j) = short.jwt.as_mut() {
        j.key = Some("short".into());
    }
    assert!(Api::new(Arc::clone(&source), &short).unwrap_err().to_string().contains("32 bytes"));
    let bad_origin =
        ApiConfig { cors_origins: vec!["explorer.livepeer.org".into()], ..ApiConfig::default() };
    assert!(Api::new(Arc::clone(&source), &bad_origin).is_err());
    let bad_frame =
        ApiConfig { frame_ancestors: vec!["x; script-src *".into()], ..ApiConfig::default() };
    assert!(Api::new(source, &bad_frame).is_err());
}

/// A validator for the response schema the document gives `path` and `status`.
#[tokio::test]
async fn every_answer_matches_the_openapi_document_and_every_route_is_documented() {
    // The node's own routes beside the API's, merged as the node serves them.
    let source: Arc<dyn SlaSource> = Arc::new(FixtureSource::new());
    let api = Api::new(source, &hs256_config()).unwrap();
    let scores = vouch_verifier::scores::Scores::open(&Default::default(), None).unwrap().0;
    let node_routes = vouch_verifier::node::http::router(
        Arc::new(Default::default()),
        Arc::default(),
        Arc::new(scores),
    );
    let base =
        format!("http://{}", api_double::serve_router(api.wrap(node_routes), ANY_PORT).await);
    let client = reqwest::Client::new();

    let doc: Value = serde_json::from_slice(
        &client.get(format!("{base}/v1/openapi.json")).send().await.unwrap().bytes().await.unwrap(),
    )
    .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: Vec<&str> =
        doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    let node_routes = ["/healthz", "/metrics", "/v1/ingest/stats", "/v1/checkpoints"];
    for route in ROUTES.iter().chain(&node_routes) {
        assert!(documented.contains(route), "{route} is routed but not in openapi.json");
    }
    for path in &documented {
        let url = format!("{base}{}", path.replace("{address}", A1));
        let status = client.get(&url).send().await.unwrap().status().as_u16();
        assert_eq!(status, 200, "{path} is documented but answers {status}");
    }

    let restricted = format!(
        "Bearer {}",
        hs256(SECRET.as_bytes(), &json!({"exp": now_secs() + 600, "scope": "sla:restricted"}))
    );
    let detail = format!("/v1/sla/orchestrators/{A1}");
    let detail_24h =
        "/v1/sla/orchestrators/0x4444444444444444444444444444444444444444?window=24h".to_owned();
    let unseen = format!("/v1/sla/orchestrators/0x{}", "0".repeat(40));
    let caps = format!("/v1/orchestrators/{A1}/capabilities");
    let caps_unseen = format!("/v1/orchestrators/0x{}/capabilities", "0".repeat(40));
    let cases: Vec<(&str, String, Option<&str>, u16)> = vec![
        ("/v1/sla/orchestrators", "/v1/sla/orchestrators".into(), None, 200),
        (
            "/v1/sla/orchestrators",
            "/v1/sla/orchestrators?window=24h&origin=production".into(),
            None,
            200,
        ),
        ("/v1/sla/orchestrators", "/v1/sla/orchestrators?window=2h".into(), None, 400),
        ("/v1/sla/orchestrators/{address}", detail.clone(), None, 200),
        ("/v1/sla/orchestrators/{address}", detail.clone(), Some(&restricted), 200),
        ("/v1/sla/orchestrators/{address}", detail_24h, None, 200),
        ("/v1/sla/orchestrators/{address}", unseen, None, 404),
        ("/v1/orchestrators/{address}/capabilities", caps.clone(), None, 200),
        ("/v1/orchestrators/{address}/capabilities", caps.clone(), Some(&restricted), 200),
        ("/v1/orchestrators/{address}/capabilities", caps_unseen, None, 404),
        ("/v1/orchestrators/{address}/capabilities", format!("{caps}?window=1h"), None, 400),
        ("/v1/network/demand", "/v1/network/demand?region=FRA".into(), None, 200),
        ("/v1/models", "/v1/models".into(), None, 200),
        ("/v1/policies", "/v1/policies".into(), None, 200),
        (
            "/v1/sla/orchestrators",
            "/v1/sla/orchestrators?policy=naap-quality-benchmark-v1".into(),
            None,
            200,
        ),
        ("/v1/sla/orchestrators", "/v1/sla/orchestrators?policy=sla-policy-v0".into(), None, 400),
        ("/v1/regions", "/v1/regions".into(), None, 200),
        ("/api/aggregated_stats", "/api/aggregated_stats?region=FRA".into(), None, 200),
        ("/healthz", "/healthz".into(), None, 200),
        ("/v1/ingest/stats", "/v1/ingest/stats".into(), None, 200),
        ("/v1/checkpoints", "/v1/checkpoints?from=10&to=20".into(), None, 200),
        ("/v1/checkpoints", "/v1/checkpoints?from=20&to=10".into(), None, 400),
    ];
    for (template, url, auth, want) in cases {
        let mut req = client.get(format!("{base}{url}"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{url}");
        let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        let v = openapi::validator(&doc, template, want);
        let errors: Vec<String> =
            v.iter_errors(&body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{url}: {errors:#?}");
        if want == 200 {
            let field =
                if template.ends_with("capabilities") { "restricted" } else { "by_gateway" };
            assert_eq!(body.get(field).is_some(), auth.is_some(), "{url}");
        }
    }
}

#[test]
fn the_document_rejects_what_the_contract_forbids() {
    // The schemas are strict enough to catch drift: a NaN-ish string, a
    // missing percentile key, an unknown field, a bad address.
    let doc = openapi::document(vouch_verifier::api::openapi::DOCUMENT);
    let v = openapi::validator(&doc, "/v1/sla/orchestrators", 200);
    let good: Value = serde_json::from_slice(
        &std::fs::read(api_double::data_dir().join("orchestrators.json")).unwrap(),
    )
    .unwrap();
    assert!(v.is_valid(&good));
    type Mutation = (&'static str, fn(&mut Value));
    let mutations: [Mutation; 5] = [
        ("score as string", |b| b["orchestrators"][0]["sla_score"] = json!("NaN")),
        ("percentile key missing", |b| {
            b["orchestrators"][0]["ptff_ms"].as_object_mut().unwrap().remove("p99");
        }),
        ("unknown field", |b| b["orchestrators"][0]["extra"] = json!(1)),
        ("upper-case address", |b| {
            b["orchestrators"][0]["address"] = json!("0xABCDEF1111111111111111111111111111111111")
        }),
        ("unknown window", |b| b["window"]["name"] = json!("2h")),
    ];
    for (name, mutate) in mutations {
        let mut bad = good.clone();
        mutate(&mut bad);
        assert!(!v.is_valid(&bad), "{name} passed validation");
    }
}

/// Wraps the test double so one leaderboard call can be held inside the source.
struct GatedSource {
    inner: FixtureSource,
    entered: std::sync::Mutex<std::sync::mpsc::Sender<()>>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl SlaSource for GatedSource {
    fn orchestrators(&self, p: &Params) -> Result<Bytes, ApiError> {
        self.entered.lock().unwrap().send(()).unwrap();
        self.release.lock().unwrap().recv().unwrap();
        self.inner.orchestrators(p)
    }
    fn orchestrator(&self, a: &str, p: &Params, r: bool) -> Result<Option<Bytes>, ApiError> {
        self.inner.orchestrator(a, p, r)
    }
    fn capabilities(&self, a: &str, r: bool) -> Result<Option<Bytes>, ApiError> {
        self.inner.capabilities(a, r)
    }
    fn demand(&self, p: &Params) -> Result<Bytes, ApiError> {
        self.inner.demand(p)
    }
    fn models(&self) -> Bytes {
        self.inner.models()
    }
    fn policies(&self) -> Bytes {
        self.inner.policies()
    }
    fn regions(&self) -> Bytes {
        self.inner.regions()
    }
    fn aggregated_stats(&self, p: &Params) -> Result<Bytes, ApiError> {
        self.inner.aggregated_stats(p)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_calls_beyond_max_in_flight_are_shed_with_503() {
    let (entered_tx, entered_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let source = Arc::new(GatedSource {
        inner: FixtureSource::new(),
        entered: std::sync::Mutex::new(entered_tx),
        release: std::sync::Mutex::new(release_rx),
    });
    let api = Api::new(source, &ApiConfig { max_in_flight: 1, ..ApiConfig::default() }).unwrap();
    let base = format!("http://{}", api_double::serve(&api, ANY_PORT).await);
    let client = reqwest::Client::new();
    let held = tokio::spawn(client.get(format!("{base}/v1/sla/orchestrators")).send());
    tokio::task::spawn_blocking(move || entered_rx.recv().unwrap()).await.unwrap();

    let resp = client.get(format!("{base}/v1/regions")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "unavailable");

    release_tx.send(()).unwrap();
    assert_eq!(held.await.unwrap().unwrap().status().as_u16(), 200);
    assert_eq!(
        client.get(format!("{base}/v1/regions")).send().await.unwrap().status().as_u16(),
        200
    );
    let metrics = vouch_net::metrics::encode_one(api.metrics());
    assert!(metrics.contains("vouch_api_shed_total 1\n"), "{metrics}");
}
