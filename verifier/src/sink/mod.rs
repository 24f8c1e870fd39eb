//! Sinks (DESIGN.md §11): consumers of what the verifier accepted.
//!
//! Every sink is a **log follower** ([`follow`]): it reads only committed
//! (accepted, durable) records of the segment log, keeps its own cursor and
//! never holds up the writer, so a slow, stopped or crashed sink costs
//! ingestion nothing and resumes where it got to.
//!
//! - [`ndjson`]: go-livepeer's Kafka envelope JSON plus provenance, one
//!   line per event (`vouch export ndjson`).
//! - [`clickhouse`]: batched inserts into ClickHouse, exactly once per
//!   event across restarts (`[sinks.clickhouse]` in the node, or
//!   `vouch sink clickhouse` as a separate process).

pub mod aggregates;
pub mod clickhouse;
pub mod follow;
pub mod ndjson;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub use follow::{
    AcceptedEnvelope, Batch, FollowConfig, FollowError, Follower, Malformed, Shutdown,
    ShutdownTrigger, shutdown_channel,
};

use clickhouse::{
    ClickHouseClient, ClickHouseConfig, ClickHouseSink, ClickHouseSinkMetrics, SinkError,
};

/// `[sinks]` of the verifier's configuration: the followers the node runs
/// beside ingestion. None by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinksConfig {
    /// `[sinks.clickhouse]`: insert accepted events into ClickHouse.
    pub clickhouse: Option<ClickHouseConfig>,
}

/// The sinks a node started, as tokio tasks following its log.
#[derive(Debug)]
pub struct RunningSinks {
    trigger: ShutdownTrigger,
    clickhouse: Option<(Arc<ClickHouseSinkMetrics>, tokio::task::JoinHandle<()>)>,
    clickhouse_client: Option<ClickHouseClient>,
    grace: Duration,
}

impl RunningSinks {
    /// Starts the sinks `config` names, following the log in `log_dir`.
    /// Must be called inside a tokio runtime.
    pub fn spawn(config: &SinksConfig, log_dir: &Path) -> Result<RunningSinks, SinkError> {
        let (trigger, shutdown) = shutdown_channel();
        let mut grace = Duration::from_secs(1);
        let mut clickhouse_client = None;
        let clickhouse = match &config.clickhouse {
            Some(ch) => {
                let sink = ClickHouseSink::new(ch.clone(), log_dir)?;
                let metrics = sink.metrics();
                clickhouse_client = Some(sink.client().clone());
                // The insert in flight and the last one may each take a timeout.
                grace = Duration::from_secs(2 * ch.request_timeout_secs.max(1) + 1);
                let task = tokio::spawn(async move {
                    let summary = sink.run(shutdown).await;
                    tracing::info!(?summary, "ClickHouse sink stopped");
                });
                Some((metrics, task))
            }
            None => None,
        };
        Ok(RunningSinks { trigger, clickhouse, clickhouse_client, grace })
    }

    /// The ClickHouse sink's client, when one runs: the SLA engine inserts
    /// sealed aggregate buckets with [`ClickHouseClient::insert_aggregates`]
    /// (the tables exist once the sink has connected).
    pub fn clickhouse_client(&self) -> Option<&ClickHouseClient> {
        self.clickhouse_client.as_ref()
    }

    /// The ClickHouse sink's counters, when it runs (`/metrics` collects them).
    pub fn clickhouse_metrics(&self) -> Option<Arc<ClickHouseSinkMetrics>> {
        self.clickhouse.as_ref().map(|(metrics, _)| Arc::clone(metrics))
    }

    /// Tells the sinks to stop, lets them insert what they hold, and waits
    /// (bounded by one request timeout; then they are aborted, which loses
    /// nothing: they resume from the log).
    pub async fn stop(self) {
        self.trigger.trigger();
        if let Some((_, mut task)) = self.clickhouse
            && tokio::time::timeout(self.grace, &mut task).await.is_err()
        {
            tracing::warn!("ClickHouse sink did not stop in time; aborted");
            task.abort();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::node::NodeConfig;

    #[test]
    fn no_sinks_by_default() {
        assert_eq!(NodeConfig::default().sinks, SinksConfig::default());
        assert!(toml::from_str::<NodeConfig>("").unwrap().sinks.clickhouse.is_none());
    }

    #[test]
    fn the_commented_example_parses_once_uncommented() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/verifier.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let start = text.find("# [sinks.clickhouse]").unwrap();
        let block: String = text[start..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{}\n", l.trim_start_matches("# ")))
            .collect();
        let config: NodeConfig = toml::from_str(&block).unwrap();
        let ch = config.sinks.clickhouse.unwrap();
        assert_eq!(ch.url, "http://127.0.0.1:8123");
        assert_eq!(ch.user.as_deref(), Some("vouch"));
        assert_eq!(ch.batch_rows, ClickHouseConfig::default().batch_rows);
        // Only the URL: everything else defaults.
        let only_url: NodeConfig =
            toml::from_str("[sinks.clickhouse]\nurl = \"http://10.0.0.1:8123\"").unwrap();
        assert_eq!(only_url.sinks.clickhouse.unwrap().retry_max_ms, 30_000);
        assert!(toml::from_str::<NodeConfig>("[sinks.clickhouse]\nurll = \"x\"").is_err());
    }
}
