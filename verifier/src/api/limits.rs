//! Per-client rate limit: a token bucket per client address in a bounded map.
//!
//! The map holds two generations: lookups move a client into the current one,
//! and when the current one reaches half the bound the previous one is
//! dropped whole (its clients counted as evicted). That keeps memory bounded
//! and every operation O(1) even when a flood comes from many addresses; an
//! evicted client merely starts again with a full bucket.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::http::HeaderMap;

use super::config::RateLimitConfig;

/// A client as the limiter sees it: an IPv4 address, or an IPv6 /64 (one
/// subscriber usually holds a whole /64, so single addresses cost nothing to rotate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key for `ip`.
    pub fn new(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let mut s = v6.segments();
                    s[4..].fill(0);
                    Self(IpAddr::V6(Ipv6Addr::from(s)))
                }
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<ClientKey, Bucket>,
    previous: HashMap<ClientKey, Bucket>,
}

/// Token buckets for all clients.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    half_bound: usize,
    header: Option<String>,
    state: Mutex<Generations>,
    /// Requests refused.
    pub limited: AtomicU64,
    /// Clients forgotten because the map was full.
    pub evictions: AtomicU64,
}

impl RateLimiter {
    /// A limiter with `config`'s budget.
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            per_second: config.per_second.max(0.0),
            burst: f64::from(config.burst.max(1)),
            half_bound: (config.max_clients / 2).max(1),
            header: config.client_ip_header.as_ref().map(|h| h.to_ascii_lowercase()),
            state: Mutex::new(Generations::default()),
            limited: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// The client of a request: the configured proxy header's right-most
    /// address when set and parseable, else the peer address.
    pub fn client(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> ClientKey {
        let from_header = self.header.as_ref().and_then(|name| {
            let value = headers.get(name.as_str())?.to_str().ok()?;
            value.rsplit(',').next()?.trim().parse::<IpAddr>().ok()
        });
        let ip = from_header
            .or(peer.map(|p| p.ip()))
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        ClientKey::new(ip)
    }

    /// Takes one token for `client` at `now`: `Ok(())`, or `Err(seconds)` until
    /// the next token.
    pub fn check(&self, client: ClientKey, now: Instant) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = match state.current.get(&client).copied() {
            Some(b) => b,
            None => {
                let b = state
                    .previous
                    .remove(&client)
                    .unwrap_or(Bucket { tokens: self.burst, at: now });
                if state.current.len() >= self.half_bound {
                    let dropped = std::mem::take(&mut state.current);
                    let old = std::mem::replace(&mut state.previous, dropped);
                    self.evictions.fetch_add(old.len() as u64, Ordering::Relaxed);
                }
                b
            }
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        let tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        let (tokens, verdict) = if tokens >= 1.0 {
            (tokens - 1.0, Ok(()))
        } else {
            self.limited.fetch_add(1, Ordering::Relaxed);
            (tokens, Err(((1.0 - tokens) / self.per_second).ceil().max(1.0) as u64))
        };
        state.current.insert(client, Bucket { tokens, at: now });
        verdict
    }

    /// Clients tracked now.
    pub fn tracked(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.current.len() + state.previous.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limiter(per_second: f64, burst: u32, max_clients: usize) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig {
            per_second,
            burst,
            max_clients,
            client_ip_header: None,
        })
    }

    fn key(i: u32) -> ClientKey {
        ClientKey::new(IpAddr::V4(i.into()))
    }

    #[test]
    fn burst_then_refill() {
        let l = limiter(2.0, 3, 10);
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check(key(1), t), Ok(()));
        }
        assert_eq!(l.check(key(1), t), Err(1));
        assert_eq!(l.check(key(2), t), Ok(()), "another client has its own bucket");
        assert_eq!(l.check(key(1), t + Duration::from_millis(500)), Ok(()));
        assert_eq!(l.limited.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_map_stays_bounded_and_counts_evictions() {
        let l = limiter(1.0, 1, 100);
        let t = Instant::now();
        for i in 0..10_000 {
            let _ = l.check(key(i), t);
        }
        assert!(l.tracked() <= 100, "{}", l.tracked());
        assert!(l.evictions.load(Ordering::Relaxed) >= 9_800);
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::new(a), ClientKey::new(b));
        assert_ne!(ClientKey::new(a), ClientKey::new(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(ClientKey::new(mapped), ClientKey::new("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn proxy_header_is_used_only_when_configured() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 198.51.100.7".parse().unwrap());
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(limiter(1.0, 1, 10).client(&headers, Some(peer)), ClientKey::new(peer.ip()));
        let l = RateLimiter::new(&RateLimitConfig {
            client_ip_header: Some("X-Forwarded-For".into()),
            ..RateLimitConfig::default()
        });
        assert_eq!(l.client(&headers, Some(peer)), ClientKey::new("198.51.100.7".parse().unwrap()));
    }
}
