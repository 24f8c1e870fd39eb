//! The HTTP API's [`SlaSource`] over the engine: parse the query, ask the
//! engine, serialize, and keep the bytes until the next seal.
//!
//! Answers change only when minutes seal (once a minute). After a seal the
//! first request for a query recomputes it while concurrent requests for the
//! same query get the previous answer at once (it names its own window, so
//! it is still a correct answer for that window): at most one request per
//! query and minute pays for a computation over the whole window.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use serde::Serialize;
use vouch_schema::Address;
use vouch_sla::{Agreement, Query, Window, WindowInfo};

use crate::converge::minute_of;

use super::Scores;
use crate::api::{ApiError, Params, SlaSource};

/// Most answers kept; when full the cache is emptied (and counted).
const MAX_ANSWERS: usize = 1024;

/// Most bytes of answers (and their keys) kept. Every distinct filter
/// combination an unauthenticated client asks for is an answer, so the
/// bound is in bytes, not entries: a client cycling through filters can
/// empty the cache but never grow it past this.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Serialized answers by query key, each with the seal it reflects.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    map: HashMap<String, (u64, Bytes)>,
    refreshing: HashSet<String>,
    /// Bytes of keys and bodies in `map`.
    bytes: usize,
    emptied: u64,
}

impl Scores {
    fn answers(&self) -> MutexGuard<'_, Answers> {
        self.answers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// (answers held, their bytes, times the cache was emptied because full).
    pub(crate) fn answer_cache_stats(&self) -> (usize, usize, u64) {
        let a = self.answers();
        (a.map.len(), a.bytes, a.emptied)
    }

    /// The answer for `key`: fresh from the cache, stale while another
    /// request refreshes it, or computed now.
    fn cached(
        &self,
        key: String,
        compute: impl FnOnce(&Scores) -> Result<Bytes, ApiError>,
    ) -> Result<Bytes, ApiError> {
        let sealed = self.sealed_end_ms.load(Ordering::Relaxed);
        {
            let mut a = self.answers();
            match a.map.get(&key) {
                Some((at, body)) if *at == sealed => return Ok(body.clone()),
                Some((_, body)) if a.refreshing.contains(&key) => return Ok(body.clone()),
                _ => {
                    a.refreshing.insert(key.clone());
                }
            }
        }
        let result = compute(self);
        let mut a = self.answers();
        a.refreshing.remove(&key);
        if let Ok(body) = &result {
            let size = key.len() + body.len();
            if let Some((_, old)) = a.map.remove(&key) {
                a.bytes -= key.len() + old.len();
            }
            if size > MAX_ANSWER_BYTES {
                return result;
            }
            if a.map.len() >= MAX_ANSWERS || a.bytes + size > MAX_ANSWER_BYTES {
                a.map.clear();
                a.bytes = 0;
                a.emptied += 1;
            }
            a.bytes += size;
            a.map.insert(key, (sealed, body.clone()));
        }
        result
    }
}

impl Scores {
    /// The agreement over an answer's window, as of the last seal.
    fn agreement_of(&self, w: &WindowInfo) -> Agreement {
        self.agreement(minute_of(w.start_ms), minute_of(w.end_ms))
    }
}

/// A cache key: the route and its parameters in order.
fn key(route: &str, params: &Params) -> String {
    let mut k = route.to_owned();
    for (name, value) in params {
        k.push('\u{1f}');
        k.push_str(name);
        k.push('=');
        k.push_str(value);
    }
    k
}

fn json(value: &impl Serialize) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("serializing the answer: {e}")))
}

fn query(params: &Params, default: Window) -> Result<Query, ApiError> {
    Query::from_params_or(params, default).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// `?policy=`: the policy whose answer is asked for (absent: the primary).
fn policy(params: &Params) -> Option<&str> {
    params.get("policy").map(String::as_str)
}

impl Scores {
    /// The engine of the policy `params` name, or a 400 naming those scored.
    fn engine(
        &self,
        params: &Params,
    ) -> Result<std::sync::RwLockReadGuard<'_, vouch_sla::Engine>, ApiError> {
        self.read_policy(policy(params)).map_err(|e| ApiError::BadRequest(e.to_string()))
    }
}

/// `GET /v1/policies`: the policies a verifier scores.
#[derive(Debug, Serialize)]
struct PoliciesResponse {
    /// The policy answers use when a query names none.
    default: String,
    policies: Vec<vouch_sla::PolicyRef>,
}

impl SlaSource for Scores {
    fn orchestrators(&self, params: &Params) -> Result<Bytes, ApiError> {
        let q = query(params, Window::H1)?;
        self.cached(key("orchestrators", params), |s| {
            let mut r = s.engine(params)?.orchestrators(&q);
            r.agreement = Some(s.agreement_of(&r.window));
            json(&r)
        })
    }

    fn orchestrator(
        &self,
        address: &str,
        params: &Params,
        restricted: bool,
    ) -> Result<Option<Bytes>, ApiError> {
        let address = Address::from_str(address)
            .map_err(|e| ApiError::BadRequest(format!("address {address:?}: {e}")))?;
        let q = query(params, Window::H1)?;
        let route = format!("orchestrator/{address}/{restricted}");
        let body = self.cached(key(&route, params), |s| {
            let detail = s.engine(params)?.orchestrator(&address, &q, restricted);
            match detail {
                Some(mut detail) => {
                    detail.agreement = Some(s.agreement_of(&detail.window));
                    json(&detail)
                }
                // Cached as an empty body: "never seen" until the next seal.
                None => Ok(Bytes::new()),
            }
        })?;
        Ok((!body.is_empty()).then_some(body))
    }

    fn capabilities(&self, address: &str, restricted: bool) -> Result<Option<Bytes>, ApiError> {
        let address = Address::from_str(address)
            .map_err(|e| ApiError::BadRequest(format!("address {address:?}: {e}")))?;
        // Not cached: advertisements change between seals, and the answer
        // is one map lookup.
        self.read().capabilities(&address, restricted).map(|c| json(&c)).transpose()
    }

    fn demand(&self, params: &Params) -> Result<Bytes, ApiError> {
        let q = query(params, Window::H1)?;
        self.cached(key("demand", params), |s| {
            let mut r = s.engine(params)?.demand(&q);
            r.agreement = Some(s.agreement_of(&r.window));
            json(&r)
        })
    }

    fn models(&self) -> Bytes {
        json(&self.read().models()).unwrap_or_default()
    }

    fn regions(&self) -> Bytes {
        json(&self.read().regions()).unwrap_or_default()
    }

    fn aggregated_stats(&self, params: &Params) -> Result<Bytes, ApiError> {
        let q = query(params, Window::H24)?;
        self.cached(key("aggregated_stats", params), |s| {
            json(&s.engine(params)?.aggregated_stats(&q))
        })
    }

    fn policies(&self) -> Bytes {
        let policies = (0..self.policy_names().len())
            .filter_map(|i| self.read_policy(self.policy_names().get(i).map(String::as_str)).ok())
            .map(|e| e.policy_ref())
            .collect();
        let default = self.policy_names().first().cloned().unwrap_or_default();
        json(&PoliciesResponse { default, policies }).unwrap_or_default()
    }
}
