//! The `vouch` command line as tests drive it, and a principal with its
//! delegate key and certificate made by it (`vouch delegate issue`), in a
//! temp dir.

use std::process::{Command, Output};

use serde_json::{Value, json};
use tempfile::TempDir;

/// The `vouch` binary. Only a test of the verifier's package knows where
/// cargo built it, so it names it:
/// `const VOUCH: Vouch = Vouch::at(env!("CARGO_BIN_EXE_vouch"));`.
#[derive(Debug, Clone, Copy)]
pub struct Vouch {
    path: &'static str,
}

impl Vouch {
    /// The binary at `path`.
    pub const fn at(path: &'static str) -> Vouch {
        Vouch { path }
    }

    /// Where the binary is.
    pub fn path(&self) -> &'static str {
        self.path
    }

    /// `vouch ARGS…`, not started yet.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.path);
        command.args(args);
        command
    }

    /// Runs `vouch ARGS…` to its end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs `vouch ARGS…`, which must succeed; its JSON output ([`ok_json`]).
    pub fn json(&self, args: &[&str]) -> Value {
        ok_json(&self.run(args))
    }

    /// The address of the key in `key_file`, as `vouch` computes it:
    /// issuing a certificate with it as the principal (written to `scratch`)
    /// reveals it.
    pub fn address_of(&self, key_file: &str, scratch: &str) -> String {
        let zero = format!("0x{}", "00".repeat(20));
        let issued = self.json(&[
            "delegate",
            "issue",
            "--principal-key",
            key_file,
            "--delegate",
            &zero,
            "--role",
            "gateway",
            "--out",
            scratch,
        ]);
        issued["principal"].as_str().unwrap().to_owned()
    }
}

/// The JSON a successful command printed (`Null` if it printed none);
/// panics with its output if it failed.
pub fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// A principal, its delegate key and certificate, in a temp dir: the
/// principal key `p.key`, the delegate key `d.key`, the certificate `d.cert`
/// (region FRA).
#[derive(Debug)]
pub struct Identity {
    /// The binary that made it and runs its commands.
    pub vouch: Vouch,
    /// The temp dir holding its files.
    pub dir: TempDir,
    /// The principal's address (0x-hex, as `vouch` prints it).
    pub principal: String,
}

impl Identity {
    /// A gateway with these keys (0x-hex).
    pub fn new(vouch: Vouch, principal_key: &str, delegate_key: &str) -> Identity {
        Identity::with_role(vouch, principal_key, delegate_key, "gateway")
    }

    /// A gateway whose principal key is all `principal` bytes and whose
    /// delegate key is all `delegate` bytes ([`crate::keys::filled_hex`]).
    pub fn filled(vouch: Vouch, principal: u8, delegate: u8) -> Identity {
        use crate::keys::filled_hex;
        Identity::new(vouch, &filled_hex(principal), &filled_hex(delegate))
    }

    /// A principal whose delegate publishes as `role`.
    pub fn with_role(
        vouch: Vouch,
        principal_key: &str,
        delegate_key: &str,
        role: &str,
    ) -> Identity {
        let dir = TempDir::new().unwrap();
        std::fs::write(dir.path().join("p.key"), principal_key).unwrap();
        std::fs::write(dir.path().join("d.key"), delegate_key).unwrap();
        let mut id = Identity { vouch, dir, principal: String::new() };
        let delegate = id.delegate_address();
        let issued = vouch.json(&[
            "delegate",
            "issue",
            "--principal-key",
            &id.p("p.key"),
            "--delegate",
            &delegate,
            "--role",
            role,
            "--region",
            "FRA",
            "--out",
            &id.p("d.cert"),
        ]);
        id.principal = issued["principal"].as_str().unwrap().to_owned();
        id
    }

    /// The path of `name` in the identity's directory.
    pub fn p(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// The delegate's address.
    pub fn delegate_address(&self) -> String {
        self.vouch.address_of(&self.p("d.key"), &self.p("probe"))
    }

    /// The 8 real go-livepeer fixture events as NDJSON: the file's path.
    pub fn events(&self) -> String {
        std::fs::write(self.dir.path().join("events.ndjson"), crate::fixtures::kafka_ndjson())
            .unwrap();
        self.p("events.ndjson")
    }

    /// Writes a publisher configuration (`publisher.toml`) that sends every
    /// event in an envelope of its own, at once; returns its path.
    pub fn one_event_per_envelope(&self) -> String {
        std::fs::write(
            self.dir.path().join("publisher.toml"),
            "key_file = \"d.key\"\ncertificate = \"d.cert\"\n[batch]\nmax_events = 1\nlinger_ms = 0\n",
        )
        .unwrap();
        self.p("publisher.toml")
    }

    /// An in-process SDK publisher with the delegate key and certificate,
    /// gossiping to `bootstrap`, cutting a batch at `max_events` or after
    /// `linger_ms` (for benchmarks that time each envelope themselves).
    pub fn publisher(
        &self,
        bootstrap: &str,
        max_events: usize,
        linger_ms: u64,
    ) -> vouch_sdk::Publisher {
        let mut config = vouch_sdk::PublisherConfig::new(self.p("d.key"), self.p("d.cert"));
        config.batch.max_events = max_events;
        config.batch.linger_ms = linger_ms;
        config.transport.bootstrap = vec![bootstrap.to_owned()];
        vouch_sdk::Publisher::new(&config).unwrap()
    }

    /// `vouch envelope sign` of the fixture events with the delegate key and
    /// `cert` (a file in the identity's directory) on chain `chain`, stamped
    /// `timestamp_ms` (default now), into `out`; returns the envelope bytes.
    pub fn sign_envelope(
        &self,
        cert: &str,
        chain: &str,
        timestamp_ms: Option<u64>,
        out: &str,
    ) -> Vec<u8> {
        let (key, cert, events, out) = (self.p("d.key"), self.p(cert), self.events(), self.p(out));
        let stamp = timestamp_ms.map(|t| t.to_string());
        let mut args =
            vec!["envelope", "sign", "--key", &key, "--cert", &cert, "--events", &events];
        if let Some(stamp) = &stamp {
            args.extend(["--timestamp", stamp]);
        }
        args.extend(["--msg-chain-id", chain, "--out", &out]);
        self.vouch.json(&args);
        std::fs::read(out).unwrap()
    }

    /// `vouch envelope sign` of the fixture events with the delegate key
    /// and certificate into `out`, nothing else chosen; returns the bytes.
    pub fn sign(&self, out: &str) -> Vec<u8> {
        let (key, cert, events, out) =
            (self.p("d.key"), self.p("d.cert"), self.events(), self.p(out));
        self.vouch.json(&[
            "envelope", "sign", "--key", &key, "--cert", &cert, "--events", &events, "--out", &out,
        ]);
        std::fs::read(out).unwrap()
    }

    /// `vouch delegate revoke` of `delegate` with the principal key,
    /// effective at `revoked_at` (Unix seconds; default now), into `out`;
    /// returns the revocation bytes.
    pub fn revoke(&self, delegate: &str, revoked_at: Option<u64>, out: &str) -> Vec<u8> {
        let (key, out) = (self.p("p.key"), self.p(out));
        let at = revoked_at.map(|t| t.to_string());
        let mut args = vec!["delegate", "revoke", "--principal-key", &key, "--delegate", delegate];
        if let Some(at) = &at {
            args.extend(["--revoked-at", at]);
        }
        args.extend(["--out", &out]);
        self.vouch.json(&args);
        std::fs::read(out).unwrap()
    }

    /// `vouch publish` of the NDJSON file `events` with the delegate key and
    /// certificate to `bootstrap`, giving up after `timeout` (e.g. `"60s"`);
    /// not started yet (a [`Command`] can go to another thread).
    pub fn publish_command(&self, events: &str, bootstrap: &str, timeout: &str) -> Command {
        self.vouch.command(&[
            "publish",
            "--key",
            &self.p("d.key"),
            "--cert",
            &self.p("d.cert"),
            "--events",
            events,
            "--bootstrap",
            bootstrap,
            "--timeout",
            timeout,
        ])
    }

    /// `vouch publish` of `events` with [`Identity::one_event_per_envelope`]'s
    /// configuration (every event in an envelope of its own, sent at once)
    /// to `bootstrap`, giving up after `timeout`; not started yet.
    pub fn publish_each_command(&self, events: &str, bootstrap: &str, timeout: &str) -> Command {
        let config = self.one_event_per_envelope();
        self.vouch.command(&[
            "publish",
            "--config",
            &config,
            "--events",
            events,
            "--bootstrap",
            bootstrap,
            "--timeout",
            timeout,
        ])
    }

    /// `vouch publish` of the fixture events to `bootstrap`, giving up
    /// after `timeout` (e.g. `"60s"`).
    pub fn publish(&self, bootstrap: &str, timeout: &str) -> Output {
        self.publish_command(&self.events(), bootstrap, timeout).output().unwrap()
    }

    /// Publishes `events` (Kafka JSON, written as NDJSON named `name`) to
    /// `bootstrap`; returns the command's JSON summary, which must show
    /// every line taken.
    pub fn publish_kafka(&self, name: &str, events: &[Value], bootstrap: &str) -> Value {
        let ndjson: String = events.iter().map(|e| format!("{e}\n")).collect();
        std::fs::write(self.dir.path().join(name), ndjson).unwrap();
        let out = ok_json(&self.publish_command(&self.p(name), bootstrap, "60s").output().unwrap());
        assert_eq!(out["rejected_lines"], json!(0), "{out}");
        out
    }
}
