//! `vouch loadtest`: a load-test gateway probing orchestrators with
//! synthetic sessions (`origin: synthetic`, signed by a `loadtest` delegate,
//! scored on their own track).
//!
//! Which orchestrators are probed, in which order and when comes from
//! [`vouch_verifier::sim::probe`]: `all` (largest stake first, in turn),
//! `top-n --n N` (the N largest stakes) or `weighted --seed S` (stake-weighted
//! random, reproducible), never more than `--budget` probes of one
//! orchestrator in any minute. `--dry-run` prints the schedule as JSON lines
//! and publishes nothing: feed it to a real load-test gateway to probe real
//! orchestrators. Without it, each probe is a simulated session (the
//! orchestrator's behaviour from `--profiles`, as `vouch demo` writes it,
//! else healthy) published in real time through the SDK's gossip transport.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use vouch_delegation::authority::snapshot;
use vouch_schema::Address;
use vouch_sdk::config::TransportConfig;
use vouch_sdk::publisher::{Publisher, PublisherSettings, Signer};
use vouch_sdk::transport::gossip::GossipTransport;
use vouch_verifier::clock::now_ms;
use vouch_verifier::sim::probe::{self, Prober, ScheduleParams, Strategy};
use vouch_verifier::sim::{Profile, Timeline};

use super::Exit;

/// Sampling strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StrategyArg {
    /// Every orchestrator in turn, largest stake first.
    All,
    /// The N largest stakes in turn (--n).
    TopN,
    /// Stake-weighted random, reproducible with --seed.
    Weighted,
}

/// What decides the schedule.
#[derive(Debug, Clone, Args)]
struct ScheduleArgs {
    /// How orchestrators are picked.
    #[arg(long, value_enum, default_value = "all")]
    strategy: StrategyArg,
    /// How many orchestrators `top-n` probes.
    #[arg(long, required_if_eq("strategy", "top-n"))]
    n: Option<usize>,
    /// Seed of `weighted` sampling (the same seed probes the same orchestrators in the same order).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Rate budget: most probes of one orchestrator in any minute.
    #[arg(long, default_value_t = 4)]
    budget: u32,
    /// Time between two probes.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    interval: Duration,
}

impl ScheduleArgs {
    fn strategy(&self) -> Strategy {
        match self.strategy {
            StrategyArg::All => Strategy::All,
            StrategyArg::TopN => Strategy::TopN(self.n.unwrap_or(0)),
            StrategyArg::Weighted => Strategy::Weighted { seed: self.seed },
        }
    }

    fn params(&self, count: usize) -> ScheduleParams {
        ScheduleParams {
            interval_ms: self.interval.as_millis().max(1) as u64,
            budget_per_minute: self.budget,
            count,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct LoadtestArgs {
    /// Authority snapshot listing the orchestrators and their stakes.
    #[arg(long)]
    authority_snapshot: PathBuf,
    #[command(flatten)]
    schedule: ScheduleArgs,
    /// Probes to run (default 100, or as many as --duration allows).
    #[arg(long)]
    count: Option<usize>,
    /// Stop after this long.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Print the schedule as JSON lines; publish nothing.
    #[arg(long)]
    dry_run: bool,
    /// The load-test delegate's key (hex key file).
    #[arg(long, required_unless_present = "dry_run")]
    key: Option<PathBuf>,
    /// Its certificate (role loadtest).
    #[arg(long, required_unless_present = "dry_run")]
    cert: Option<PathBuf>,
    /// Verifiers to gossip to (repeatable multiaddrs ending in /p2p/<peer id>).
    #[arg(long)]
    bootstrap: Vec<String>,
    /// Behaviour of the simulated orchestrators: `profiles.json` of a `vouch demo` folder.
    #[arg(long)]
    profiles: Option<PathBuf>,
    /// Gateway region the probes are observed from (default: the certificate's).
    #[arg(long)]
    region: Option<String>,
}

pub(crate) fn run(args: LoadtestArgs) -> Result<Exit> {
    let view = snapshot::load(&args.authority_snapshot)?;
    let targets = probe::targets_from_view(&view)?;
    let count = match (args.count, args.duration) {
        (Some(c), _) => c,
        (None, Some(d)) => (d.as_millis() / args.schedule.interval.as_millis().max(1)) as usize + 1,
        (None, None) => 100,
    };
    let schedule =
        probe::schedule(&targets, args.schedule.strategy(), args.schedule.params(count))?;
    if args.dry_run {
        let mut out = std::io::stdout().lock();
        for p in &schedule {
            let line = serde_json::to_string(p)?;
            if writeln!(out, "{line}").is_err() {
                break;
            }
        }
        return Ok(Exit::Ok);
    }
    let (Some(key), Some(cert)) = (&args.key, &args.cert) else {
        bail!("--key and --cert are required unless --dry-run");
    };
    let signer =
        Signer::new(vouch_delegation::keys::read_hex_key(key)?, super::read_certificate(cert)?);
    if signer.certificate.role != vouch_delegation::Role::Loadtest {
        bail!(
            "{} is a {} certificate; a load test needs role loadtest",
            cert.display(),
            signer.certificate.role
        );
    }
    let region = args.region.clone().unwrap_or_else(|| signer.certificate.region.clone());
    let profiles = match &args.profiles {
        Some(path) => read_profiles(path)?,
        None => BTreeMap::new(),
    };
    let transport = GossipTransport::start(&TransportConfig {
        bootstrap: args.bootstrap.clone(),
        ..TransportConfig::default()
    })?;
    let publisher =
        Publisher::with_transport(signer, PublisherSettings::default(), Box::new(transport))?;
    let stop = Arc::new(AtomicBool::new(false));
    super::serve::watch_signals(Arc::clone(&stop));
    let deadline = args.duration.map(|d| now_ms() + d.as_millis() as u64);
    let start = now_ms();
    let mut prober = Prober::new(schedule, start, args.schedule.seed, region);
    let mut timeline = Timeline::new(1 << 20);
    let backup = targets.first().map(|t| t.address).unwrap_or(Address::ZERO);
    let mut published = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let now = now_ms();
        if deadline.is_some_and(|d| now >= d) || (prober.finished() && timeline.is_empty()) {
            break;
        }
        prober.plan_due(
            now,
            &mut timeline,
            0,
            |a| profiles.get(a).copied().unwrap_or(Profile::Healthy),
            backup,
        );
        for (_, event) in timeline.due(now) {
            if publisher.publish(event).is_ok() {
                published += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = publisher.close(Duration::from_secs(10))?;
    eprintln!(
        "{}",
        serde_json::json!({"probes": prober.started(), "events": published, "envelopes": stats.sent_envelopes})
    );
    Ok(Exit::Ok)
}

/// Reads a demo's `profiles.json`: `{"0x…": {"profile": "healthy", …}, …}`.
fn read_profiles(path: &std::path::Path) -> Result<BTreeMap<Address, Profile>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a profiles map", path.display()))?;
    let mut out = BTreeMap::new();
    for (address, entry) in json {
        let address: Address =
            address.parse().map_err(|_| anyhow::anyhow!("bad address {address:?}"))?;
        let name = entry["profile"].as_str().unwrap_or("healthy");
        out.insert(address, name.parse()?);
    }
    Ok(out)
}
