//! The node's own routes beside the SLA API: `/healthz`, `/metrics`,
//! `/v1/ingest/stats` and `/v1/checkpoints`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::converge::minute_of;
use crate::converge::report::checkpoints_json;
use crate::scores::Scores;
use crate::validate::Outcome;

use super::ingest::Metrics;

/// Appends more Prometheus lines (the API's, the scores', the sinks').
pub type Render = Arc<dyn Fn(&mut String) + Send + Sync>;

#[derive(Clone)]
struct HttpState {
    metrics: Arc<Metrics>,
    extra: Arc<[Render]>,
    scores: Arc<Scores>,
}

/// The router over shared `metrics`; `/metrics` also renders `extra`;
/// `/v1/checkpoints` reads the checkpoint book of `scores`.
pub fn router(metrics: Arc<Metrics>, extra: Vec<Render>, scores: Arc<Scores>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(prometheus))
        .route("/v1/ingest/stats", get(stats))
        .route("/v1/checkpoints", get(checkpoints))
        .with_state(HttpState { metrics, extra: extra.into(), scores })
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
    let mut text = render_metrics(&state.metrics);
    for render in state.extra.iter() {
        render(&mut text);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
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

/// Prometheus text exposition of every counter.
pub fn render_metrics(metrics: &Metrics) -> String {
    let snap = metrics.snapshot();
    let mut out = String::new();
    let _ = writeln!(out, "# HELP vouch_ingest_total Telemetry messages by outcome and reason.");
    let _ = writeln!(out, "# TYPE vouch_ingest_total counter");
    for (o, r, n) in &snap.outcomes {
        let _ =
            writeln!(out, "vouch_ingest_total{{outcome=\"{}\",reason=\"{r}\"}} {n}", o.as_str());
    }
    let _ =
        writeln!(out, "# HELP vouch_control_total Control-topic messages by outcome and reason.");
    let _ = writeln!(out, "# TYPE vouch_control_total counter");
    for ((o, r), n) in &snap.control {
        let _ =
            writeln!(out, "vouch_control_total{{outcome=\"{}\",reason=\"{r}\"}} {n}", o.as_str());
    }
    let _ = writeln!(
        out,
        "# HELP vouch_sync_ingest_total Envelopes fetched by sync, by outcome and reason."
    );
    let _ = writeln!(out, "# TYPE vouch_sync_ingest_total counter");
    for ((o, r), n) in &snap.synced {
        let _ = writeln!(
            out,
            "vouch_sync_ingest_total{{outcome=\"{}\",reason=\"{r}\"}} {n}",
            o.as_str()
        );
    }
    let _ =
        writeln!(out, "# HELP vouch_guard_evictions_total Entries evicted from bounded guards.");
    let _ = writeln!(out, "# TYPE vouch_guard_evictions_total counter");
    for (b, n) in &snap.evictions {
        let _ = writeln!(out, "vouch_guard_evictions_total{{bound=\"{b}\"}} {n}");
    }
    let gauges = [
        ("vouch_log_records", "gauge", "Records committed to the log.", snap.log_records),
        (
            "vouch_ingest_chain_gaps_total",
            "counter",
            "Accepted envelopes whose prev was not the newest accepted on their chain.",
            snap.chain_gaps,
        ),
        ("vouch_log_first_index", "gauge", "First record still in the log.", snap.log_first_index),
        ("vouch_log_commits_total", "counter", "Group commits since start.", snap.commits),
        (
            "vouch_log_pruned_segments_total",
            "counter",
            "Segments removed by retention since start.",
            snap.pruned_segments,
        ),
        ("vouch_state_writes_total", "counter", "Derived-state writes to redb.", snap.state_writes),
        (
            "vouch_state_file_bytes",
            "gauge",
            "Size of the redb state file (revocations, views, minute index).",
            snap.state_file_bytes,
        ),
        (
            "vouch_sla_snapshot_bytes",
            "gauge",
            "Size of the last SLA engine snapshot written.",
            snap.snapshot_bytes,
        ),
        (
            "vouch_warmup_readmitted",
            "gauge",
            "Logged envelopes re-applied to the duplicate guards at start.",
            snap.warm_up.readmitted,
        ),
        (
            "vouch_ingest_stopped",
            "gauge",
            "1 once the ingest worker stopped before shutdown (the node exits non-zero).",
            u64::from(metrics.ingest_stopped().is_some()),
        ),
        (
            "vouch_ingest_shed_total",
            "counter",
            "Messages shed from the full ingest queue.",
            metrics.shed.load(Ordering::Relaxed),
        ),
        (
            "vouch_sync_batches_shed_total",
            "counter",
            "Batches of synced envelopes shed from their full queue (fetched again later).",
            metrics.sync_batches_shed.load(Ordering::Relaxed),
        ),
        (
            "vouch_sync_catching_up",
            "gauge",
            "1 while the node holds its seals after a start, catching up with its peers.",
            u64::from(metrics.catching_up.load(Ordering::Relaxed)),
        ),
        (
            "vouch_gossip_send_failed_total",
            "counter",
            "Messages gossipsub could not send to a peer in time (SlowPeer).",
            metrics.gossip_send_failed.load(Ordering::Relaxed),
        ),
        (
            "vouch_gossip_verdicts_dropped_total",
            "counter",
            "Validation verdicts for messages gossipsub had already forgotten.",
            metrics.verdicts_dropped.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
    out
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
        let state = HttpState { metrics: Arc::clone(&metrics), extra: Vec::new().into(), scores };
        assert_eq!(health(State(state.clone())).await.status(), StatusCode::OK);
        metrics.mark_ingest_stopped("log: disk full".to_owned());
        let response = health(State(state)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, json!({"status": "ingest_stopped", "error": "log: disk full"}));
        assert!(render_metrics(&metrics).contains("vouch_ingest_stopped 1"));
    }

    #[test]
    fn empty_metrics_render() {
        let m = Metrics::default();
        let text = render_metrics(&m);
        assert!(text.contains("vouch_log_records 0"), "{text}");
        assert_eq!(stats_json(&m)["accepted"], json!(0));
    }
}
