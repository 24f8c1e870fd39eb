//! The node's own routes beside the SLA API: `/healthz`, `/metrics`,
//! `/v1/ingest/stats` and `/v1/checkpoints`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use vouch_net::metrics::{CONTENT_TYPE, encode};

use crate::converge::minute_of;
use crate::converge::report::checkpoints_json;
use crate::scores::Scores;
use crate::validate::Outcome;

use super::ingest::Metrics;

#[derive(Clone)]
struct HttpState {
    metrics: Arc<Metrics>,
    registry: Arc<Registry>,
    scores: Arc<Scores>,
}

/// The router over shared `metrics`; `/metrics` encodes `registry` (every
/// subsystem's collector, [`super::metrics::registry`]); `/v1/checkpoints`
/// reads the checkpoint book of `scores`.
pub fn router(metrics: Arc<Metrics>, registry: Arc<Registry>, scores: Arc<Scores>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(prometheus))
        .route("/v1/ingest/stats", get(stats))
        .route("/v1/checkpoints", get(checkpoints))
        .with_state(HttpState { metrics, registry, scores })
}

/// `/v1/checkpoints?minute=M` or `?from=A&to=B` (minutes since the Unix
/// epoch, `to` exclusive, at most a day): own and peers' checkpoints, the
/// agreement, and who differs on which minute. Without a span: the last five
/// sealed minutes.
async fn checkpoints(State(state): State<HttpState>, RawQuery(query): RawQuery) -> Response {
    let q: std::collections::BTreeMap<String, String> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let num = |k: &str| q.get(k).map(|v| v.parse::<u64>());
    let end = minute_of(state.scores.sealed_end_ms());
    let span = match (num("minute"), num("from"), num("to")) {
        (Some(Ok(m)), None, None) => Ok((m, m + 1)),
        (None, Some(Ok(a)), Some(Ok(b))) if a <= b => Ok((a, b)),
        (None, None, None) => Ok((end.saturating_sub(5), end)),
        _ => Err(()),
    };
    match span {
        Ok((from, to)) => {
            Json(checkpoints_json(&state.scores.checkpoints(), from, to)).into_response()
        }
        Err(()) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": "bad_request",
                "message": "give minute=M, or from=A&to=B with A <= B (minutes since the epoch)"}})),
        )
            .into_response(),
    }
}

/// `/healthz`: 200 `{"status": "ok"}`, or 503 `{"status": "ingest_stopped",
/// "error"}` once the ingest worker stopped (the node is exiting non-zero:
/// nothing more can be acknowledged).
async fn health(State(state): State<HttpState>) -> Response {
    match state.metrics.ingest_stopped() {
        None => Json(json!({"status": "ok"})).into_response(),
        Some(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "ingest_stopped", "error": error})),
        )
            .into_response(),
    }
}

async fn prometheus(State(state): State<HttpState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], encode(&state.registry))
}

async fn stats(State(state): State<HttpState>) -> Json<Value> {
    Json(stats_json(&state.metrics))
}

/// `/v1/ingest/stats`: `{accepted, rejected, ignored, shed, gossip_send_failed,
/// by_reason: [{outcome, reason, count}], control: [...], synced: [...],
/// sync_batches_shed, catching_up}`.
pub fn stats_json(metrics: &Metrics) -> Value {
    let snap = metrics.snapshot();
    let total =
        |o: Outcome| snap.outcomes.iter().filter(|(x, _, _)| *x == o).map(|t| t.2).sum::<u64>();
    let by_reason: Vec<Value> = snap
        .outcomes
        .iter()
        .map(|(o, r, n)| json!({"outcome": o.as_str(), "reason": r, "count": n}))
        .collect();
    let rows = |m: &std::collections::BTreeMap<(Outcome, &'static str), u64>| -> Vec<Value> {
        m.iter()
            .map(|((o, r), n)| json!({"outcome": o.as_str(), "reason": r, "count": n}))
            .collect()
    };
    json!({
        "accepted": total(Outcome::Accept),
        "rejected": total(Outcome::Reject),
        "ignored": total(Outcome::Ignore),
        "shed": metrics.shed.load(Ordering::Relaxed),
        "gossip_send_failed": metrics.gossip_send_failed.load(Ordering::Relaxed),
        "chain_gaps": snap.chain_gaps,
        "log_records": snap.log_records,
        "warm_up": {
            "records": snap.warm_up.records,
            "readmitted": snap.warm_up.readmitted,
            "revocations": snap.warm_up.revocations,
            "scored": snap.warm_up.scored,
        },
        "by_reason": by_reason,
        "control": rows(&snap.control),
        "synced": rows(&snap.synced),
        "sync_batches_shed": metrics.sync_batches_shed.load(Ordering::Relaxed),
        "catching_up": metrics.catching_up.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn health_says_when_ingestion_stopped() {
        let metrics = Arc::new(Metrics::default());
        let scores =
            Arc::new(Scores::open(&crate::scores::PolicyFiles::default(), None).unwrap().0);
        let registry = Arc::new(Registry::default());
        let state = HttpState { metrics: Arc::clone(&metrics), registry, scores };
        assert_eq!(health(State(state.clone())).await.status(), StatusCode::OK);
        metrics.mark_ingest_stopped("log: disk full".to_owned());
        let response = health(State(state)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, json!({"status": "ingest_stopped", "error": "log: disk full"}));
        assert!(vouch_net::metrics::encode_one(metrics).contains("vouch_ingest_stopped 1"));
    }

    #[test]
    fn empty_metrics_render() {
        let m = Arc::new(Metrics::default());
        let text = vouch_net::metrics::encode_one(Arc::clone(&m));
        assert!(text.contains("vouch_log_records 0"), "{text}");
        assert_eq!(stats_json(&m)["accepted"], json!(0));
    }
}
