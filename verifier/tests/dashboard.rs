//! The dashboard in real headless Chromium (Debian's `chromium`, driven by
//! playwright-core from `interop/`): `interop/dashboard.mjs` loads the page
//! served by the API router over the SLA engine's test double
//! (`api_double::FixtureSource`), changes a filter, opens an orchestrator and
//! checks its SVG charts, switches the SLA policy and checks that the requests
//! carry it and the page names it, with no console errors. Screenshots:
//! `$VOUCH_ARTIFACTS` (default `target/artifacts/`) `dashboard.png` and
//! `dashboard-orchestrator.png`.
#![allow(clippy::unwrap_used)]

mod api_double;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use vouch_verifier::api::{Api, ApiConfig};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_headless_chromium() {
    let root = workspace();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} not found: install Debian's chromium (apt-get install chromium; scripts/test.sh does)"
    );
    assert!(
        root.join("interop/node_modules/playwright-core").exists(),
        "playwright-core missing: npm ci --prefix interop (scripts/test.sh does)"
    );
    let api = Api::new(Arc::new(api_double::FixtureSource::new()), &ApiConfig::default()).unwrap();
    let addr = api_double::serve(&api, ([127, 0, 0, 1], 0).into()).await;
    let artifacts = std::env::var_os("VOUCH_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/artifacts"));

    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(root.join("interop/dashboard.mjs"))
            .arg(format!("http://{addr}"))
            .arg(&artifacts)
            .env("CHROMIUM", chromium)
            .output()
            .expect("run node (Node.js 20+ is required)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "dashboard.mjs failed\nstdout: {stdout}\nstderr: {stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["rows_before"].as_array().unwrap().len(), 3, "{report}");
    assert_eq!(report["rows_after"].as_array().unwrap().len(), 4, "{report}");
    assert!(report["filter_request"].as_str().unwrap().contains("window=24h"), "{report}");
    assert_eq!(report["chart_count"], 5, "{report}");
    assert_eq!(report["demand_has_literal_markup"], true, "{report}");
    assert!(report["csp"].as_str().unwrap().contains("frame-ancestors"), "{report}");
    // The policy selector: both policies, the default first and selected.
    assert_eq!(
        report["policy_options"],
        serde_json::json!(["sla-policy-v2", "naap-quality-benchmark-v1"]),
        "{report}"
    );
    assert_eq!(report["policy_selected"], "sla-policy-v2", "{report}");
    assert_eq!(report["policy_shown_before"], "sla-policy-v2", "{report}");
    let v2 = vouch_sla::Policy::builtin("sla-policy-v2").unwrap();
    assert_eq!(report["policy_hash_before"], v2.hash[..12], "{report}");
    // Switching it re-asks with it and shows its name and hash.
    let request = report["policy_request"].as_str().unwrap();
    assert!(request.contains("policy=naap-quality-benchmark-v1"), "{report}");
    assert!(request.contains("window=24h"), "the window was lost: {report}");
    assert_eq!(report["policy_shown"], "naap-quality-benchmark-v1", "{report}");
    let naap = vouch_sla::Policy::builtin("naap-quality-benchmark-v1").unwrap();
    assert_eq!(report["policy_hash"], naap.hash[..12], "{report}");
}
