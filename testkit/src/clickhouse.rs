//! A private ClickHouse server (Debian's clickhouse-server 18.16) for tests:
//! its own config and data in a temp dir, free loopback ports, killed on
//! drop. It can be killed and restarted on the same ports and data, to test
//! what survives an outage. A missing binary fails the test with what to
//! install (scripts/test.sh installs it). Queries go through
//! `clickhouse-client`, an implementation independent of the sink's.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::free_port;

/// How long a server may take to answer after a start (the suite runs
/// many processes at once on few cores).
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A running server; killed on drop.
#[derive(Debug)]
pub struct ClickHouse {
    child: Option<Child>,
    /// Its HTTP interface's port on 127.0.0.1.
    pub http_port: u16,
    /// Its native protocol's port on 127.0.0.1.
    pub tcp_port: u16,
    dir: TempDir,
}

/// Where executable `name` is: on `PATH`, or in `/usr/sbin` (where Debian
/// puts the server, often off a user's `PATH`). The server has no harmless
/// flag to probe it with, so this looks for the file.
fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

const USERS_XML: &str = r#"<?xml version="1.0"?><yandex>
 <profiles><default></default></profiles>
 <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
  <profile>default</profile><quota>default</quota></default></users>
 <quotas><default></default></quotas>
</yandex>
"#;

fn config_xml(http_port: u16, tcp_port: u16) -> String {
    format!(
        r#"<?xml version="1.0"?><yandex>
 <logger><level>warning</level><log>log/clickhouse-server.log</log><errorlog>log/clickhouse-server.err.log</errorlog><size>10M</size><count>2</count></logger>
 <http_port>{http_port}</http_port><tcp_port>{tcp_port}</tcp_port><listen_host>127.0.0.1</listen_host>
 <max_connections>64</max_connections><keep_alive_timeout>3</keep_alive_timeout><max_concurrent_queries>50</max_concurrent_queries>
 <uncompressed_cache_size>67108864</uncompressed_cache_size><mark_cache_size>67108864</mark_cache_size>
 <path>data/</path><tmp_path>data/tmp/</tmp_path><user_files_path>data/user_files/</user_files_path>
 <format_schema_path>data/format_schemas/</format_schema_path><users_config>users.xml</users_config>
 <default_profile>default</default_profile><default_database>default</default_database><timezone>UTC</timezone>
</yandex>
"#
    )
}

impl ClickHouse {
    /// Starts a server on free ports and waits until it answers.
    pub fn start() -> ClickHouse {
        assert!(
            find("clickhouse-server").is_some() && find("clickhouse-client").is_some(),
            "ClickHouse is not installed: apt-get install -y clickhouse-server clickhouse-client \
             (scripts/test.sh does this)"
        );
        let mut last = String::new();
        for _ in 0..5 {
            let dir = TempDir::new().unwrap();
            std::fs::write(dir.path().join("users.xml"), USERS_XML).unwrap();
            std::fs::create_dir_all(dir.path().join("log")).unwrap();
            std::fs::create_dir_all(dir.path().join("data")).unwrap();
            let mut ch =
                ClickHouse { child: None, http_port: free_port(), tcp_port: free_port(), dir };
            std::fs::write(ch.dir.path().join("config.xml"), config_xml(ch.http_port, ch.tcp_port))
                .unwrap();
            match ch.spawn() {
                Ok(()) => return ch,
                Err(e) => last = e,
            }
        }
        panic!("ClickHouse did not start: {last}");
    }

    /// Starts the server process (again) on this dir's config and ports.
    fn spawn(&mut self) -> Result<(), String> {
        let server = find("clickhouse-server").unwrap();
        let mut child = Command::new(server)
            .arg("--config-file=config.xml")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + START_DEADLINE;
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.http_port)).is_ok() && self.ping() {
                self.child = Some(child);
                return Ok(());
            }
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!("exited with {status}: {}", self.error_log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!("no answer within {START_DEADLINE:?}: {}", self.error_log()))
    }

    fn ping(&self) -> bool {
        Command::new("clickhouse-client")
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &self.tcp_port.to_string(),
                "--query",
                "SELECT 1",
            ])
            .stdin(Stdio::null())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log/clickhouse-server.err.log"))
            .unwrap_or_default()
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The HTTP interface's URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The data directory (survives [`ClickHouse::kill`]).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGKILL: the server dies mid-whatever it was doing.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The old process's ports may take a moment to be released.
                Err(e) if Instant::now() < deadline => {
                    eprintln!("ClickHouse restart: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("ClickHouse did not restart: {e}"),
            }
        }
    }

    /// Runs `sql` with clickhouse-client; returns its trimmed TSV output.
    pub fn query(&self, sql: &str) -> String {
        let out = Command::new("clickhouse-client")
            .args(["--host", "127.0.0.1", "--port", &self.tcp_port.to_string(), "--query", sql])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
    }

    /// Like [`ClickHouse::query`], `None` on an error (a table not created yet).
    pub fn try_query(&self, sql: &str) -> Option<String> {
        let out = Command::new("clickhouse-client")
            .args(["--host", "127.0.0.1", "--port", &self.tcp_port.to_string(), "--query", sql])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        out.status.success().then(|| String::from_utf8(out.stdout).unwrap().trim_end().to_owned())
    }

    /// A query's single number.
    pub fn number(&self, sql: &str) -> u64 {
        let text = self.query(sql);
        text.parse().unwrap_or_else(|_| panic!("{sql}: {text:?}"))
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.kill();
    }
}
