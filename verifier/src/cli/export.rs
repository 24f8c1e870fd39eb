//! `vouch export ndjson LOG_DIR [--follow] [--from INDEX]`: every accepted
//! event as one line of go-livepeer's Kafka JSON plus a `vouch` provenance
//! object (see `vouch_verifier::sink::ndjson`).
//!
//! Stdout is flushed after each batch read from the log. A closed pipe
//! (`| head`) ends the export quietly with status 0. On exit, one line on
//! stderr says where to resume: `{"next_log_index": N}`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use vouch_verifier::sink::{FollowConfig, Follower, Shutdown, ndjson};

use super::Exit;

#[derive(Debug, Subcommand)]
pub(crate) enum ExportCommand {
    /// One JSON line per accepted event: go-livepeer's Kafka envelope plus provenance.
    Ndjson(NdjsonArgs),
}

#[derive(Debug, Args)]
pub(crate) struct NdjsonArgs {
    /// The verifier's log directory (`<data dir>/log`).
    log_dir: PathBuf,
    /// Keep following the log for new commits until SIGINT or SIGTERM.
    #[arg(long)]
    follow: bool,
    /// Start at this log index (resume with the `next_log_index` of an earlier run).
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// With --follow: how often to look for new commits.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
}

pub(crate) fn run(cmd: ExportCommand) -> Result<Exit> {
    match cmd {
        ExportCommand::Ndjson(args) => ndjson_export(args),
    }
}

fn ndjson_export(args: NdjsonArgs) -> Result<Exit> {
    if !args.log_dir.is_dir() {
        anyhow::bail!("{} is not a log directory", args.log_dir.display());
    }
    let config = FollowConfig { poll_interval: args.poll_interval, ..FollowConfig::default() };
    let mut follower = Follower::new(&args.log_dir, args.from, config);
    // Index after the last record whose lines were all written.
    let mut resume = args.from;
    let runtime = super::runtime()?;
    let result = runtime.block_on(async {
        let mut shutdown = if args.follow {
            Shutdown::on(super::serve::shutdown_signal())
        } else {
            Shutdown::never()
        };
        let mut out = io::stdout().lock();
        loop {
            let batch = if args.follow {
                match follower.next_batch(&mut shutdown).await? {
                    Some(batch) => batch,
                    None => return Ok(()),
                }
            } else {
                let batch = follower.read_blocking().await?;
                if batch.records == 0 {
                    return Ok(());
                }
                batch
            };
            match ndjson::write_lines(&mut out, &batch.envelopes) {
                Ok(_) => resume = batch.next_index,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(anyhow::Error::new(e).context("writing stdout")),
            }
        }
    });
    let _ = writeln!(io::stderr(), "{}", serde_json::json!({"next_log_index": resume}));
    result.with_context(|| format!("exporting {}", args.log_dir.display()))?;
    Ok(Exit::Ok)
}
