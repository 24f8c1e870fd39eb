//! Serves the HTTP API and dashboard over the TEST DOUBLE of the SLA engine
//! (`tests/api_double`, fixed JSON from `tests/data/api/`), for looking at the
//! dashboard and for `scripts/api-load.sh` before a real engine is wired in:
//!
//! ```sh
//! cargo run -p vouch-verifier --example api_double -- 127.0.0.1:8080
//! ```
//!
//! The rate limit is off (load tests measure the server, not the limiter).

#[path = "../tests/api_double/mod.rs"]
mod api_double;

use std::net::SocketAddr;
use std::sync::Arc;

use vouch_verifier::api::{Api, ApiConfig, RateLimitConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listen: SocketAddr =
        std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".into()).parse()?;
    let config = ApiConfig {
        rate_limit: RateLimitConfig { per_second: 0.0, ..RateLimitConfig::default() },
        ..ApiConfig::default()
    };
    let api = Api::new(Arc::new(api_double::FixtureSource::new()), &config)?;
    println!("http://{}/", api_double::serve(&api, listen).await);
    std::future::pending::<()>().await;
    Ok(())
}
