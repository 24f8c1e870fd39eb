//! `vouch replay LOG_DIR`: audit a verifier's log. Checks every frame's hash
//! chain and every envelope's certificate and signature against the
//! authority view and revocations recorded in the log, on every core, and
//! prints a JSON summary; the first bad record is named by index, segment
//! file and byte offset (exit 1). With `--sla ROUTE [--query Q]` it also
//! rebuilds the SLA aggregates with the policy and seals the log recorded
//! and prints exactly the bytes the node's API serves for that query.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use serde_json::{Value, json};
use vouch_delegation::authority::snapshot;
use vouch_schema::Address;

use base64::Engine as _;
use vouch_delegation::SignedCheckpoint;
use vouch_verifier::api::SlaSource;
use vouch_verifier::node::config::NodeConfig;
use vouch_verifier::replay::proof::compare;
use vouch_verifier::replay::{ReplayError, ReplayOptions, replay, replay_scores};
use vouch_verifier::store::LogError;
use vouch_verifier::store::log::HEAD_FILE;

use super::{Exit, print_json};

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The log directory (a node's `<data dir>/log`; a data dir holding `log/` works too).
    log_dir: PathBuf,
    /// The node's configuration file: its `[validation]` settings (EIP-712
    /// network, certificate policy, stream path, roles) are the rules applied.
    #[arg(long)]
    config: Option<PathBuf>,
    /// EIP-712 chainId certificates must be bound to (overrides the config).
    #[arg(long)]
    chain_id: Option<u64>,
    /// EIP-712 verifyingContract (overrides the config).
    #[arg(long)]
    verifying_contract: Option<Address>,
    /// Authority snapshot in force before the first view the log records
    /// (for a log whose first view was pruned with its segment).
    #[arg(long)]
    initial_view: Option<PathBuf>,
    /// Signature-checking threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Draw the progress bar on stderr even when it is not a terminal.
    #[arg(long, conflicts_with = "quiet")]
    progress: bool,
    /// Never draw the progress bar.
    #[arg(long)]
    quiet: bool,
    /// Rebuild the SLA aggregates with the policy the log recorded and print
    /// what the API serves at this route instead of the summary (which goes
    /// to stderr): `orchestrators` (/v1/sla/orchestrators), `demand`,
    /// `aggregated_stats`, `regions`, `models`, or `orchestrator/0x…`.
    #[arg(long, value_name = "ROUTE")]
    sla: Option<String>,
    /// The API query string for --sla, e.g. `window=1h&region=FRA`.
    #[arg(long, default_value = "", requires = "sla")]
    query: String,
    /// Checkpoints a verifier published (a file, or a URL, holding the JSON
    /// of its `GET /v1/checkpoints`): after the replay, the log is held
    /// against that verifier's own checkpoints, and the first minute where
    /// the log omits or adds envelopes is named (exit 1).
    #[arg(long, value_name = "FILE|URL", conflicts_with = "sla")]
    checkpoints: Option<String>,
}

pub(crate) fn run(args: ReplayArgs) -> Result<Exit> {
    let mut options = ReplayOptions::default();
    if let Some(path) = &args.config {
        let config = NodeConfig::from_file(path)
            .with_context(|| format!("reading configuration {}", path.display()))?;
        options.validation = config.validation;
    }
    if let Some(chain_id) = args.chain_id {
        options.validation.network.chain_id = chain_id;
    }
    if let Some(contract) = args.verifying_contract {
        options.validation.network.verifying_contract = contract;
    }
    if let Some(path) = &args.initial_view {
        options.initial_view = Some(snapshot::load(path)?);
    }
    options.threads = args.threads;
    options.progress = progress_bar(&args);
    let dir = log_dir(args.log_dir);
    let result = match &args.sla {
        None => replay(&dir, &options, |_| {}).map(|summary| (summary, None)),
        Some(_) => replay_scores(&dir, &options).map(|(summary, scores)| (summary, Some(scores))),
    };
    match result {
        Ok((summary, scores)) => {
            let mut value = serde_json::to_value(&summary)?;
            let mut differs = false;
            if let Some(source) = &args.checkpoints {
                let published = published_checkpoints(source, &options)?;
                let comparison = compare(&dir, &published.checkpoints)?;
                differs = comparison.first_difference.is_some();
                if let Some(d) = &comparison.first_difference {
                    eprintln!(
                        "minute {}: the log {} envelopes ({} against {} in the checkpoint)",
                        d.minute, d.kind, d.log_envelopes, d.checkpoint_envelopes
                    );
                }
                let mut c = serde_json::to_value(&comparison)?;
                c["unverified"] = json!(published.unverified);
                value["published_checkpoints"] = c;
            }
            if let Value::Object(map) = &mut value {
                map.insert("ok".into(), json!(!differs));
                map.insert("log".into(), json!(dir.display().to_string()));
            }
            match (&args.sla, &scores) {
                (Some(route), Some(scores)) => {
                    eprintln!("{value}");
                    let body =
                        scores.answer(route, &args.query).map_err(|e| anyhow::anyhow!("{e}"))?;
                    let mut out = std::io::stdout().lock();
                    out.write_all(&body)?;
                    out.write_all(b"\n")?;
                }
                _ => print_json(&value),
            }
            Ok(if differs { Exit::CheckFailed } else { Exit::Ok })
        }
        Err(e) => {
            options.progress.finish_and_clear();
            match &e {
                ReplayError::Record { index, segment, offset, problem } => {
                    print_json(&json!({
                        "ok": false,
                        "error": e.to_string(),
                        "index": index,
                        "segment": segment,
                        "offset": offset,
                        "problem": problem.to_string(),
                    }));
                }
                ReplayError::Log(LogError::Io { .. })
                | ReplayError::Threads(_)
                | ReplayError::Scores(_) => {
                    return Err(
                        anyhow::Error::new(e).context(format!("replaying {}", dir.display()))
                    );
                }
                ReplayError::Log(_) => {
                    print_json(&json!({"ok": false, "error": e.to_string()}));
                }
            }
            eprintln!("replay failed: {e}");
            Ok(Exit::CheckFailed)
        }
    }
}

/// Checkpoints someone published, read back.
struct Published {
    /// Their own checkpoints (signatures checked where signed).
    checkpoints: Vec<SignedCheckpoint>,
    /// Signed ones whose signature did not verify (left out).
    unverified: u64,
}

/// The publishing verifier's own checkpoints in the JSON of its
/// `GET /v1/checkpoints`, read from a file or fetched from a URL.
fn published_checkpoints(source: &str, options: &ReplayOptions) -> Result<Published> {
    let text = if source.starts_with("http://") || source.starts_with("https://") {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime
            .block_on(async {
                let response = reqwest::get(source).await?.error_for_status()?;
                response.text().await
            })
            .with_context(|| format!("fetching {source}"))?
    } else {
        std::fs::read_to_string(source).with_context(|| format!("reading {source}"))?
    };
    let body: Value =
        serde_json::from_str(&text).with_context(|| format!("{source} is not checkpoint JSON"))?;
    let policy = options.validation.policy();
    let mut out = Published { checkpoints: Vec::new(), unverified: 0 };
    for minute in body["minutes"].as_array().into_iter().flatten() {
        let Some(cbor) = minute["own"]["cbor"].as_str() else { continue };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(cbor)
            .with_context(|| format!("{source}: a checkpoint is not base64"))?;
        let signed = SignedCheckpoint::decode(&bytes)
            .with_context(|| format!("{source}: a checkpoint does not decode"))?;
        if !signed.certificate.is_empty()
            && signed.verify(&options.validation.network, &policy).is_err()
        {
            out.unverified += 1;
            continue;
        }
        out.checkpoints.push(signed);
    }
    Ok(out)
}

/// `dir`, or `dir/log` when `dir` is a node's data directory.
pub(crate) fn log_dir(dir: PathBuf) -> PathBuf {
    let nested = dir.join("log");
    if !dir.join(HEAD_FILE).exists() && nested.join(HEAD_FILE).exists() { nested } else { dir }
}

fn progress_bar(args: &ReplayArgs) -> ProgressBar {
    if args.quiet || !(args.progress || std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::term_like(Box::new(PlainStderr))
    };
    let bar = ProgressBar::with_draw_target(None, target);
    let style = ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} records ({per_sec}, eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// stderr that is not a terminal (a file, a CI log): `--progress` draws
/// there anyway, one line rewritten with carriage returns.
#[derive(Debug)]
struct PlainStderr;

impl PlainStderr {
    fn write(&self, s: &str) -> std::io::Result<()> {
        std::io::stderr().write_all(s.as_bytes())
    }
}

impl TermLike for PlainStderr {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        if n > 0 { self.write(&format!("\x1b[{n}A")) } else { Ok(()) }
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        if n > 0 { self.write(&format!("\x1b[{n}B")) } else { Ok(()) }
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        if n > 0 { self.write(&format!("\x1b[{n}C")) } else { Ok(()) }
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        if n > 0 { self.write(&format!("\x1b[{n}D")) } else { Ok(()) }
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write(&format!("{s}\n"))
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.write(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.write("\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
