//! `/metrics`: the node's one [`Registry`], with every subsystem's
//! collector in it. Each subsystem keeps its own counters (they also feed
//! JSON routes such as `/v1/ingest/stats`) and declares its `vouch_*`
//! families when scraped; this module only registers them, and declares the
//! ingest worker's own.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use vouch_net::ConnectionCounters;
use vouch_net::metrics::{counter, counter_family, gauge};
use vouch_net::sync::SyncStats;

use crate::api::ApiMetrics;
use crate::converge::Convergence;
use crate::http_server::HttpServerMetrics;
use crate::scores::Scores;
use crate::sink::aggregates::AggregateExport;
use crate::sink::clickhouse::ClickHouseSinkMetrics;
use crate::validate::Outcome;

use super::ingest::Metrics;

/// Every subsystem whose metrics the node serves.
pub(crate) struct Sources {
    pub(crate) ingest: Arc<Metrics>,
    pub(crate) http: Arc<HttpServerMetrics>,
    pub(crate) p2p: Arc<ConnectionCounters>,
    /// Present when sync is on.
    pub(crate) sync: Option<Arc<SyncStats>>,
    pub(crate) api: Arc<ApiMetrics>,
    pub(crate) scores: Arc<Scores>,
    pub(crate) converge: Arc<Convergence>,
    /// Present when the ClickHouse sink runs.
    pub(crate) clickhouse: Option<Arc<ClickHouseSinkMetrics>>,
    /// Present when the ClickHouse sink runs.
    pub(crate) aggregates: Option<Arc<AggregateExport>>,
}

/// The node's registry: every source's collector, in a fixed order.
pub(crate) fn registry(s: Sources) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(s.ingest));
    registry.register_collector(Box::new(s.http));
    registry.register_collector(Box::new(s.p2p));
    if let Some(sync) = s.sync {
        registry.register_collector(Box::new(sync));
    }
    registry.register_collector(Box::new(s.api));
    registry.register_collector(Box::new(Arc::clone(&s.scores)));
    registry.register_collector(Box::new(Checkpoints { converge: s.converge, scores: s.scores }));
    if let Some(clickhouse) = s.clickhouse {
        registry.register_collector(Box::new(clickhouse));
    }
    if let Some(aggregates) = s.aggregates {
        registry.register_collector(Box::new(aggregates));
    }
    registry
}

/// The convergence rows, with the checkpoint book's refusals (the book
/// lives beside the scores).
#[derive(Debug)]
struct Checkpoints {
    converge: Arc<Convergence>,
    scores: Arc<Scores>,
}

impl Collector for Checkpoints {
    fn encode(&self, enc: DescriptorEncoder<'_>) -> fmt::Result {
        self.converge.encode_metrics(self.scores.checkpoints().refused(), enc)
    }
}

/// One `{outcome, reason}` sample.
fn by_outcome(
    o: Outcome,
    reason: &'static str,
    n: u64,
) -> ([(&'static str, &'static str); 2], u64) {
    ([("outcome", o.as_str()), ("reason", reason)], n)
}

impl Collector for Metrics {
    /// The ingest worker's families: outcomes, guards, log and state.
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let snap = self.snapshot();
        let enc = &mut enc;
        counter_family(
            enc,
            "vouch_ingest_total",
            "Telemetry messages by outcome and reason.",
            snap.outcomes.iter().map(|(o, r, n)| by_outcome(*o, r, *n)),
        )?;
        counter_family(
            enc,
            "vouch_control_total",
            "Control-topic messages by outcome and reason.",
            snap.control.iter().map(|((o, r), n)| by_outcome(*o, r, *n)),
        )?;
        counter_family(
            enc,
            "vouch_sync_ingest_total",
            "Envelopes fetched by sync, by outcome and reason.",
            snap.synced.iter().map(|((o, r), n)| by_outcome(*o, r, *n)),
        )?;
        counter_family(
            enc,
            "vouch_guard_evictions_total",
            "Entries evicted from bounded guards.",
            snap.evictions.iter().map(|(b, n)| ([("bound", *b)], *n)),
        )?;
        gauge(enc, "vouch_log_records", "Records committed to the log.", snap.log_records)?;
        counter(
            enc,
            "vouch_ingest_chain_gaps_total",
            "Accepted envelopes whose prev was not the newest accepted on their chain.",
            snap.chain_gaps,
        )?;
        gauge(
            enc,
            "vouch_log_first_index",
            "First record still in the log.",
            snap.log_first_index,
        )?;
        counter(enc, "vouch_log_commits_total", "Group commits since start.", snap.commits)?;
        counter(
            enc,
            "vouch_log_uncached_bytes_total",
            "Committed log bytes dropped from the page cache, beyond [log] cached_tail_bytes.",
            snap.uncached_bytes,
        )?;
        counter(
            enc,
            "vouch_log_pruned_segments_total",
            "Segments removed by retention since start.",
            snap.pruned_segments,
        )?;
        counter(
            enc,
            "vouch_state_writes_total",
            "Derived-state writes to redb.",
            snap.state_writes,
        )?;
        gauge(
            enc,
            "vouch_state_file_bytes",
            "Size of the redb state file (revocations, views, minute index).",
            snap.state_file_bytes,
        )?;
        gauge(
            enc,
            "vouch_sla_snapshot_bytes",
            "Size of the last SLA engine snapshot written.",
            snap.snapshot_bytes,
        )?;
        gauge(
            enc,
            "vouch_warmup_readmitted",
            "Logged envelopes re-applied to the duplicate guards at start.",
            snap.warm_up.readmitted,
        )?;
        gauge(
            enc,
            "vouch_ingest_stopped",
            "1 once the ingest worker stopped before shutdown (the node exits non-zero).",
            u64::from(self.ingest_stopped().is_some()),
        )?;
        counter(
            enc,
            "vouch_ingest_shed_total",
            "Messages shed from the full ingest queue (by count or by bytes).",
            self.shed.load(Ordering::Relaxed),
        )?;
        gauge(
            enc,
            "vouch_ingest_queue_bytes",
            "Bytes of gossip messages waiting for validation ([ingest] queue_bytes bounds it).",
            self.queue_bytes.load(Ordering::Relaxed),
        )?;
        counter(
            enc,
            "vouch_sync_batches_shed_total",
            "Batches of synced envelopes shed from their full queue (fetched again later).",
            self.sync_batches_shed.load(Ordering::Relaxed),
        )?;
        gauge(
            enc,
            "vouch_sync_catching_up",
            "1 while the node holds its seals after a start, catching up with its peers.",
            u64::from(self.catching_up.load(Ordering::Relaxed)),
        )?;
        counter(
            enc,
            "vouch_gossip_send_failed_total",
            "Messages gossipsub could not send to a peer in time (SlowPeer).",
            self.gossip_send_failed.load(Ordering::Relaxed),
        )?;
        counter(
            enc,
            "vouch_gossip_verdicts_dropped_total",
            "Validation verdicts for messages gossipsub had already forgotten.",
            self.verdicts_dropped.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::api::{Api, SlaSource};
    use crate::scores::PolicyFiles;
    use crate::sink::clickhouse::ClickHouseClient;

    /// Every name `/metrics` serves, as dashboards know them: a rename must
    /// change this list.
    const NAMES: [&str; 91] = [
        "vouch_api_jwt_rejected_total",
        "vouch_api_rate_limit_clients",
        "vouch_api_rate_limit_evictions_total",
        "vouch_api_rate_limited_total",
        "vouch_api_requests_total",
        "vouch_api_shed_total",
        "vouch_checkpoints_disagreements_total",
        "vouch_checkpoints_own_total",
        "vouch_checkpoints_peer_total",
        "vouch_checkpoints_refused_total",
        "vouch_checkpoints_unsent_total",
        "vouch_control_total",
        "vouch_gossip_send_failed_total",
        "vouch_gossip_verdicts_dropped_total",
        "vouch_guard_evictions_total",
        "vouch_http_accept_errors_total",
        "vouch_http_connections",
        "vouch_http_connections_accepted_total",
        "vouch_http_connections_evicted_total",
        "vouch_http_connections_limit",
        "vouch_http_connections_refused_total",
        "vouch_http_fd_reserve",
        "vouch_http_header_timeouts_total",
        "vouch_http_idle_timeouts_total",
        "vouch_http_requests_refused_total",
        "vouch_ingest_chain_gaps_total",
        "vouch_ingest_queue_bytes",
        "vouch_ingest_shed_total",
        "vouch_ingest_stopped",
        "vouch_ingest_total",
        "vouch_log_commits_total",
        "vouch_log_first_index",
        "vouch_log_pruned_segments_total",
        "vouch_log_records",
        "vouch_log_uncached_bytes_total",
        "vouch_p2p_connections",
        "vouch_p2p_connections_refused_total",
        "vouch_process_max_fds",
        "vouch_process_open_fds",
        "vouch_sink_aggregates_dropped_total",
        "vouch_sink_aggregates_errors_total",
        "vouch_sink_aggregates_inserted_total",
        "vouch_sink_clickhouse_buffer_full_total",
        "vouch_sink_clickhouse_cursor",
        "vouch_sink_clickhouse_errors_total",
        "vouch_sink_clickhouse_inserts_total",
        "vouch_sink_clickhouse_lag_records",
        "vouch_sink_clickhouse_rows_total",
        "vouch_sla_answer_cache_full_total",
        "vouch_sla_cached_answer_bytes",
        "vouch_sla_cached_answers",
        "vouch_sla_events_total",
        "vouch_sla_gateway_series",
        "vouch_sla_hour_buckets",
        "vouch_sla_listed_orchestrators",
        "vouch_sla_minute_buckets",
        "vouch_sla_open_attempts",
        "vouch_sla_open_sessions",
        "vouch_sla_policy_state_bytes",
        "vouch_sla_principal_sessions",
        "vouch_sla_principal_state_bytes",
        "vouch_sla_sealed_end_ms",
        "vouch_sla_series",
        "vouch_sla_snapshot_bytes",
        "vouch_sla_state_bytes",
        "vouch_state_file_bytes",
        "vouch_state_writes_total",
        "vouch_sync_bans_total",
        "vouch_sync_batches_shed_total",
        "vouch_sync_bytes_received_total",
        "vouch_sync_bytes_sent_total",
        "vouch_sync_catching_up",
        "vouch_sync_claims_full_total",
        "vouch_sync_envelopes_fetched_total",
        "vouch_sync_ids_compared_total",
        "vouch_sync_ids_recently_fetched_total",
        "vouch_sync_index_evicted_total",
        "vouch_sync_index_ids",
        "vouch_sync_ingest_total",
        "vouch_sync_peers_banned",
        "vouch_sync_peers_full_total",
        "vouch_sync_peers_syncing",
        "vouch_sync_penalties_total",
        "vouch_sync_refusals_received_total",
        "vouch_sync_request_failures_total",
        "vouch_sync_requests_made_total",
        "vouch_sync_requests_refused_total",
        "vouch_sync_requests_served_total",
        "vouch_sync_rounds_total",
        "vouch_sync_serving",
        "vouch_warmup_readmitted",
    ];

    #[tokio::test]
    async fn the_registry_serves_every_name_once() {
        let scores = Arc::new(Scores::open(&PolicyFiles::default(), None).unwrap().0);
        let api = Api::new(Arc::clone(&scores) as Arc<dyn SlaSource>, &Default::default()).unwrap();
        let client =
            ClickHouseClient::new("http://127.0.0.1:9", "vouch", Duration::from_secs(1)).unwrap();
        let (aggregates, _task) = AggregateExport::spawn(client);
        let registry = registry(Sources {
            ingest: Arc::default(),
            http: Arc::default(),
            p2p: Arc::default(),
            sync: Some(Arc::default()),
            api: api.metrics(),
            scores,
            converge: Arc::new(Convergence::new(
                vouch_delegation::Eip712Network::arbitrum_one(),
                vouch_net::PartitionSet::all(),
                None,
                &Default::default(),
            )),
            clickhouse: Some(Arc::default()),
            aggregates: Some(Arc::new(aggregates)),
        });
        let text = vouch_net::metrics::encode(&registry);
        assert_eq!(vouch_net::metrics::exposed_names(&text), NAMES, "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
