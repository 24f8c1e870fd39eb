//! `vouch sink clickhouse --log LOG_DIR --url URL [--database D]`: the
//! ClickHouse sink as a separate process following a verifier's log (see
//! `vouch_verifier::sink::clickhouse` for how it stays exact across
//! restarts of either side).
//!
//! It runs until SIGINT or SIGTERM (or, with `--once`, until everything
//! committed is inserted), then prints one JSON line:
//! `{"rows", "inserts", "next_log_index"}`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use vouch_verifier::sink::Shutdown;
use vouch_verifier::sink::clickhouse::{ClickHouseConfig, ClickHouseSink};

use super::Exit;
use super::serve::{server_runtime, shutdown_signal};

#[derive(Debug, Subcommand)]
pub(crate) enum SinkCommand {
    /// Insert every accepted event of a log into ClickHouse (table vouch_events).
    Clickhouse(ClickHouseArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ClickHouseArgs {
    /// The verifier's log directory (`<data dir>/log`).
    #[arg(long)]
    log: PathBuf,
    /// ClickHouse's HTTP interface.
    #[arg(long, default_value = "http://127.0.0.1:8123")]
    url: String,
    /// Database (created if missing).
    #[arg(long, default_value = "default")]
    database: String,
    /// ClickHouse user; the password comes from $VOUCH_CLICKHOUSE_PASSWORD.
    #[arg(long)]
    user: Option<String>,
    /// Most rows per insert.
    #[arg(long, default_value_t = ClickHouseConfig::default().batch_rows)]
    batch_rows: usize,
    /// Insert at the latest this long after the first buffered row.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    flush_interval: std::time::Duration,
    /// How often to look for new commits.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    poll_interval: std::time::Duration,
    /// Log index to start at when the table is empty.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Exit once everything committed in the log is in ClickHouse.
    #[arg(long)]
    once: bool,
}

pub(crate) fn run(cmd: SinkCommand) -> Result<Exit> {
    match cmd {
        SinkCommand::Clickhouse(args) => clickhouse(args),
    }
}

fn clickhouse(args: ClickHouseArgs) -> Result<Exit> {
    let config = ClickHouseConfig {
        url: args.url,
        database: args.database,
        user: args.user,
        password: std::env::var("VOUCH_CLICKHOUSE_PASSWORD").ok(),
        batch_rows: args.batch_rows,
        flush_interval_ms: args.flush_interval.as_millis() as u64,
        poll_interval_ms: args.poll_interval.as_millis() as u64,
        from_index: args.from,
        ..ClickHouseConfig::default()
    };
    let sink = ClickHouseSink::new(config, &args.log)?;
    let summary = server_runtime()?.block_on(async {
        let shutdown = Shutdown::on(shutdown_signal());
        if args.once { sink.run_until_caught_up(shutdown).await } else { sink.run(shutdown).await }
    });
    println!("{}", serde_json::to_string(&summary)?);
    Ok(Exit::Ok)
}
