//! A hostile HTTP client against a running `vouch node`, real processes on
//! loopback.
//!
//! - Slowloris: ~1,200 connections with half a request head each, from 30
//!   loopback addresses, against a node held to 1,024 descriptors (more
//!   connections than it has descriptors). The node keeps serving: a fresh
//!   connection gets `/healthz`, a publisher's envelopes are accepted, the
//!   refusal, eviction and timeout counters move, every idle connection is
//!   closed by the server once the header timeout passes, and the node
//!   stops cleanly. Before the hardened server, the node ran out of
//!   descriptors and its log could not write `HEAD`.
//! - Oversized request targets and headers get the API's JSON 414/431 (or,
//!   past hyper's ceiling, a bare 431), never a dropped connection.
//! - A log that can no longer be written stops ingestion: the node says so
//!   and exits non-zero.
//!
//! Waits are bounded polls; nothing asserts timing.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;
use vouch_testkit::WAIT;
use vouch_testkit::authority;
use vouch_testkit::cli::{Identity, Vouch, ok_json};
use vouch_testkit::node::NodeProcess;
use vouch_testkit::process::http_get;

const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));

/// The node's open-file limit (soft and hard): the common default.
const NODE_NOFILE: u64 = 1024;
/// Loopback source addresses the attack comes from (127.0.0.2 onwards).
const SOURCES: u64 = 30;
/// Connections opened from each source address.
const PER_SOURCE: u64 = 40;
/// The node's per-client cap: below `PER_SOURCE`, so every source is refused some.
const PER_IP_CAP: u64 = 32;
/// `[http.limits] fd_reserve` and the `[p2p.limits]` below: what the node
/// keeps from HTTP, so its cap is clamped below the configured 512.
const FD_RESERVE: u64 = 500;
const P2P_FDS: u64 = 64 + 16 + 16 + 16;
/// Half a request head: what a slowloris client sends, then nothing.
const PARTIAL_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";

/// A gateway allowed by an authority snapshot in `work`; returns the snapshot path.
fn admitted_gateway(work: &TempDir) -> (Identity, String) {
    let gateway = Identity::filled(VOUCH, 0x31, 0x32);
    let snapshot = authority::gateway_snapshot(work.path(), &[&gateway.principal]);
    (gateway, snapshot.to_str().unwrap().to_owned())
}

/// The value of the sample `series` (name and labels exactly) in a
/// Prometheus text exposition.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

fn metrics(node: &NodeProcess) -> String {
    let (status, text) = node.get("/metrics");
    assert_eq!(status, 200, "{text}");
    text
}

/// Sends `request` as is and reads the answer until the server closes:
/// `(status, head, body)`; a reset after the answer is the end too.
fn raw(host_port: &str, request: &[u8]) -> (u16, String, String) {
    let mut stream = TcpStream::connect(host_port).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    // The server may answer (and close) before it read everything sent.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !answer.is_empty() => break,
            Err(e) => panic!("no answer ({e}); got {:?}", String::from_utf8_lossy(&answer)),
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// A blocking connection from `source` to `server` that has sent `head`
/// (a refused connection may be closed already, so the write may fail).
fn connect_from(
    runtime: &tokio::runtime::Runtime,
    source: Ipv4Addr,
    server: SocketAddr,
    head: &[u8],
) -> TcpStream {
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((source, 0))).unwrap();
        let stream = tokio::time::timeout(WAIT, socket.connect(server))
            .await
            .expect("connect within WAIT")
            .unwrap();
        stream.into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    let _ = (&stream).write_all(head);
    stream
}

/// Opens a connection from `source` to `server` and sends half a request head.
fn slow_client(
    runtime: &tokio::runtime::Runtime,
    source: Ipv4Addr,
    server: SocketAddr,
) -> TcpStream {
    connect_from(runtime, source, server, PARTIAL_HEAD)
}

/// Reads `stream` until the server closes it (EOF or reset) before
/// `deadline`; returns what it sent.
fn wait_closed(mut stream: TcpStream, deadline: Instant) -> Result<Vec<u8>, String> {
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Ok(answer),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!("still open: {e}"));
            }
            Err(_) => return Ok(answer),
        }
    }
}

#[test]
fn slowloris_beyond_every_cap_leaves_the_node_serving() {
    // This process holds every attacking socket: raise its own limit.
    let own = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let nofile = NODE_NOFILE.min(own);
    let per_source = PER_SOURCE.min(own.saturating_sub(256) / SOURCES);
    assert!(per_source > PER_IP_CAP, "open-file limit {own} too low for this test");
    let expected_cap = 512.min(nofile - FD_RESERVE - P2P_FDS);

    let work = TempDir::new().unwrap();
    let (gateway, snapshot) = admitted_gateway(&work);
    let config = work.path().join("verifier.toml");
    std::fs::write(
        &config,
        format!(
            "[p2p.limits]\nmax_established_incoming = 64\nmax_established_outgoing = 16\n\
             max_pending_incoming = 16\nmax_pending_outgoing = 16\n\
             [http.limits]\nmax_connections = 512\nmax_connections_per_ip = {PER_IP_CAP}\n\
             header_read_timeout_ms = 2000\nfd_reserve = {FD_RESERVE}\n"
        ),
    )
    .unwrap();
    let data_dir = work.path().join("data");
    let mut node = NodeProcess::spawn_with_nofile(
        VOUCH,
        nofile,
        &[
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--authority-snapshot",
            &snapshot,
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/0",
            "--http-listen",
            "127.0.0.1:0",
        ],
    );
    let host = node.host_port().to_owned();
    let server: SocketAddr = host.parse().unwrap();
    let before = metrics(&node);
    assert_eq!(
        metric(&before, "vouch_http_connections_limit"),
        expected_cap,
        "the cap is clamped so that it and the reserve fit {nofile} descriptors"
    );
    assert_eq!(metric(&before, "vouch_process_max_fds"), nofile);

    // The attack: more connections than the node has descriptors.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut held = Vec::new();
    for s in 0..SOURCES {
        let source = Ipv4Addr::new(127, 0, 0, 2 + s as u8);
        for _ in 0..per_source {
            held.push(slow_client(&runtime, source, server));
        }
    }
    println!("{} slow connections opened", held.len());

    // Meanwhile: a fresh client is served, and so is a publisher.
    let (status, body) = http_get(&host, "/healthz");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    // Even one that shares a flooding address (a NAT, a monitor on the same
    // host): at its address's cap, that address's idlest connection makes room.
    let whole = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let shared = connect_from(&runtime, Ipv4Addr::new(127, 0, 0, 2), server, whole);
    let answer = wait_closed(shared, Instant::now() + WAIT).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    ok_json(&gateway.publish(&node.p2p(), "60s"));
    let stats = node
        .wait_stats("the publisher's envelopes accepted", |s| s["accepted"].as_u64().unwrap() >= 1);
    assert_eq!(stats["rejected"], 0, "{stats}");

    // The server closes every slow connection: refused at once (with a
    // best-effort 503), evicted for a fresh one, or at the header timeout.
    let deadline = Instant::now() + WAIT;
    let mut answered_503 = 0;
    for (i, stream) in held.into_iter().enumerate() {
        let answer =
            wait_closed(stream, deadline).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        let answer = String::from_utf8_lossy(&answer);
        if answer.starts_with("HTTP/1.1 503") {
            assert!(answer.contains(r#""code":"unavailable""#), "{answer}");
            answered_503 += 1;
        }
    }
    assert!(node.process.child.try_wait().unwrap().is_none(), "the node is still running");

    let text = metrics(&node);
    let refused = |reason: &str| {
        metric(&text, &format!("vouch_http_connections_refused_total{{reason=\"{reason}\"}}"))
    };
    println!(
        "refused per_ip_cap {} total_cap {} fd_reserve {}, evicted {}, header timeouts {}, \
         refusals answered 503: {answered_503}",
        refused("per_ip_cap"),
        refused("total_cap"),
        refused("fd_reserve"),
        metric(&text, "vouch_http_connections_evicted_total"),
        metric(&text, "vouch_http_header_timeouts_total"),
    );
    // Idle connections over an address's cap (or the total cap) evict the
    // idlest rather than being refused: every source went over its cap.
    // Refusals (each answered 503 where the socket still takes it) are left
    // for connections whose slots are all busy, which idle ones never are.
    assert!(metric(&text, "vouch_http_connections_evicted_total") >= SOURCES, "{text}");
    assert!(metric(&text, "vouch_http_header_timeouts_total") > 0, "{text}");
    assert!(metric(&text, "vouch_http_connections_accepted_total") >= expected_cap, "{text}");
    // Only this scrape's own connection is left (and maybe the one before it).
    let deadline = Instant::now() + WAIT;
    while metric(&metrics(&node), "vouch_http_connections") > 2 {
        assert!(Instant::now() < deadline, "connections still counted open");
        std::thread::sleep(Duration::from_millis(200));
    }

    // A graceful stop still commits the log.
    assert!(node.terminate().success());
    assert_eq!(VOUCH.json(&["replay", data_dir.to_str().unwrap(), "--quiet"])["ok"], json!(true));
}

#[test]
fn oversized_targets_and_headers_get_json_errors() {
    let work = TempDir::new().unwrap();
    let (_gateway, snapshot) = admitted_gateway(&work);
    let node = NodeProcess::spawn(VOUCH, &work.path().join("data"), snapshot.as_ref());
    let host = node.host_port().to_owned();
    let get = |target: &str, headers: &str| {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n");
        raw(&host, request.as_bytes())
    };
    let json_error = |(status, head, body): (u16, String, String), want: u16, code: &str| {
        assert_eq!(status, want, "{head}\n{body:.200}");
        assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
    };

    let long_path = format!("/v1/sla/orchestrators/0x{}", "a".repeat(5_000));
    json_error(get(&long_path, ""), 414, "uri_too_long");
    let long_query = format!("/v1/sla/orchestrators?window=1h&region={}", "F".repeat(5_000));
    json_error(get(&long_query, ""), 414, "uri_too_long");
    let one_big = format!("X-Big: {}\r\n", "b".repeat(20_000));
    json_error(get("/healthz", &one_big), 431, "headers_too_large");
    let many: String = (0..60).map(|i| format!("X-H{i}: {}\r\n", "m".repeat(400))).collect();
    json_error(get("/healthz", &many), 431, "headers_too_large");
    // Just inside the limits: answered as usual.
    let (status, _, body) =
        get(&format!("/healthz?{}", "q".repeat(3_000)), &"X-Ok: o\r\n".repeat(50));
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));

    // Past hyper's own ceiling (twice the limits): a bare 431, then close;
    // nothing that large is buffered, and nothing panics.
    let huge = format!("X-Huge: {}\r\n", "h".repeat(64 * 1024));
    assert_eq!(get("/healthz", &huge).0, 431);
    let countless: String = (0..200).map(|i| format!("X-C{i}: c\r\n")).collect();
    assert_eq!(get("/healthz", &countless).0, 431);
    // Not HTTP at all.
    assert_eq!(raw(&host, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n").0, 400);

    let (status, body) = http_get(&host, "/healthz");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#), "the node still serves");
    let text = metrics(&node);
    let refused = |reason: &str| {
        metric(&text, &format!("vouch_http_requests_refused_total{{reason=\"{reason}\"}}"))
    };
    assert_eq!(refused("uri_too_long"), 2, "{text}");
    assert_eq!(refused("headers_too_large"), 4, "{text}");
    assert_eq!(refused("malformed"), 1, "{text}");
}

#[test]
fn a_log_that_cannot_be_written_stops_the_node_with_an_error() {
    let work = TempDir::new().unwrap();
    let (gateway, snapshot) = admitted_gateway(&work);
    let data_dir = work.path().join("data");
    let mut command =
        VOUCH.command(&["node", "--data-dir", data_dir.to_str().unwrap(), "--authority-snapshot"]);
    command
        .arg(&snapshot)
        .args(["--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--http-listen", "127.0.0.1:0"])
        .stderr(Stdio::piped());
    let mut node = NodeProcess::spawn_command(command);
    let host = node.host_port().to_owned();
    assert_eq!(http_get(&host, "/healthz").0, 200);

    // The log directory is replaced by a file: the segment already open
    // still takes appends, but the next commit cannot replace log/HEAD.
    std::fs::rename(data_dir.join("log"), data_dir.join("log.moved")).unwrap();
    std::fs::write(data_dir.join("log"), b"not a directory").unwrap();

    // `/healthz` is watched from the side until the node is gone: whatever
    // it answers must be 200 "ok" or 503 "ingest_stopped" with the reason.
    let watcher = {
        let host = host.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                let Ok(mut stream) = TcpStream::connect(&host) else { break };
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let request =
                    format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
                let mut answer = String::new();
                if stream.write_all(request.as_bytes()).is_ok()
                    && stream.read_to_string(&mut answer).is_ok()
                    && let Some((head, body)) = answer.split_once("\r\n\r\n")
                {
                    seen.push((head.split(' ').nth(1).unwrap_or("").to_owned(), body.to_owned()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        })
    };
    // An envelope to commit (its publisher may never hear back).
    let _ = gateway.publish(&node.p2p(), "5s");

    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = node.process.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the node kept running without its log");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(2), "a non-zero exit");
    let mut stderr = String::new();
    node.process.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains("ingestion stopped; the node exits with an error"), "{stderr}");
    assert!(stderr.contains("/data/log"), "the cause is named: {stderr}");
    for (status, body) in watcher.join().unwrap() {
        match status.as_str() {
            "200" => assert_eq!(body, r#"{"status":"ok"}"#),
            "503" => {
                let body: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(body["status"], "ingest_stopped", "{body}");
                assert!(body["error"].as_str().unwrap().contains("/data/log"), "{body}");
            }
            other => panic!("/healthz answered {other}: {body}"),
        }
    }
}
