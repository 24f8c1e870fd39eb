//! What the long-running commands (`node`, `bridge streamr`, `sink
//! clickhouse`, `export ndjson --follow`, `demo`, `loadtest`) share: a
//! two-thread runtime, the one-line JSON announcement on stdout, and
//! stopping on SIGINT or SIGTERM (in a runtime, or for a plain loop).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use serde::Serialize;

/// A multi-threaded runtime with two workers (the work is I/O and one
/// blocking worker thread; more threads only compete for the cores).
pub(crate) fn server_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Prints `started` as one JSON line on stdout and flushes it; a closed
/// stdout must not stop a server, so write errors are ignored.
pub(crate) fn announce(started: &impl Serialize) {
    let line = serde_json::to_string(started).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(%e, "cannot watch SIGTERM; SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Sets `stop` on SIGINT or SIGTERM, from a small thread of its own: for
/// commands that run a plain loop rather than a runtime.
pub(crate) fn watch_signals(stop: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new().name("vouch-signals".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(shutdown_signal());
        stop.store(true, Ordering::SeqCst);
    });
    if let Err(e) = spawned {
        tracing::warn!(%e, "cannot watch signals; stop with --duration");
    }
}
