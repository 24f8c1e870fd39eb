//! `vouch demo`: a whole network on loopback, no setup. The work is
//! [`vouch_verifier::demo`]'s (a simulated network of about twenty
//! orchestrators, gateways and a load-test gateway with real signatures,
//! three `vouch node` processes, sessions published in real time); this
//! parses the flags, calls it and prints.
//!
//! Stdout gets one JSON line once the verifiers listen: `{"demo_dir",
//! "dashboard", "policy", "seed", "verifiers": [{"name", "http", "peer_id",
//! "p2p_listen", "data_dir", "config"}]}`, then nothing else; progress and
//! the live status line go to stderr. Ctrl-C (SIGINT or SIGTERM) or
//! `--duration` stops it: publishers flush, the nodes get SIGTERM and commit
//! their logs, and the folder stays for `vouch replay`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use clap::Args;
use vouch_verifier::demo::{Demo, DemoOptions};

use super::Exit;
use super::serve::watch_signals;

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Stop by itself after this long (default: run until Ctrl-C).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Folder for keys, certificates, configs and the verifiers' logs; must
    /// not exist or be empty (default: a new ./vouch-demo/run-<UTC time>).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Simulated orchestrators.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
    orchestrators: u32,
    /// Verifier nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    verifiers: u32,
    /// Seed of keys, stakes, sessions and probes (same seed, same network).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Time between two new gateway sessions (network-wide).
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    session_interval: Duration,
}

pub(crate) fn run(args: DemoArgs) -> Result<Exit> {
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(Arc::clone(&stop));
    let options = DemoOptions {
        dir: args.dir.unwrap_or_else(default_dir),
        vouch: std::env::current_exe().context("locating the vouch binary")?,
        orchestrators: args.orchestrators as usize,
        verifiers: args.verifiers as usize,
        seed: args.seed,
        session_interval: args.session_interval,
        duration: args.duration,
    };
    let mut demo = Demo::prepare(options)?;
    let network = demo.network();
    eprintln!(
        "vouch demo: {} orchestrators, {} gateways + 1 load-test gateway, {} verifiers",
        network.orchestrators.len(),
        network.gateways.len(),
        args.verifiers
    );
    eprintln!("  data folder: {}", demo.dir().display());

    let started = demo.start_verifiers(&stop, |v| {
        eprintln!("  {}: {} (peer {})", v.name, v.http, v.peer_id);
    });
    if let Err(e) = started {
        demo.stop_verifiers(|line| eprintln!("{line}"));
        return Err(e.into());
    }
    let result = announce(&demo).and_then(|()| {
        demo.simulate(&stop, |line| eprintln!("{line}"))?;
        Ok(())
    });
    eprintln!("vouch demo: stopping");
    demo.stop_verifiers(|line| eprintln!("{line}"));
    result?;
    eprintln!("vouch demo: stopped; data kept in {}", demo.dir().display());
    for n in demo.verifiers() {
        eprintln!(
            "  audit {}: vouch replay {} --config {}",
            n.name,
            n.data_dir.join("log").display(),
            n.config.display()
        );
    }
    Ok(Exit::Ok)
}

/// Stdout's one JSON line, once the verifiers listen, and the dashboard's address on stderr.
fn announce(demo: &Demo) -> Result<()> {
    println!("{}", demo.announcement()?);
    let _ = std::io::stdout().flush();
    eprintln!(
        "  dashboard: {}  (scores appear once the first minutes seal, ~1-2 min)",
        demo.dashboard()?
    );
    Ok(())
}

/// `--dir`'s default: a new `./vouch-demo/run-<UTC time>`.
fn default_dir() -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    PathBuf::from("vouch-demo").join(format!("run-{}", stamp.replace(':', "")))
}
