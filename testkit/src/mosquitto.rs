//! A private mosquitto broker for tests: it stands in for a Streamr node's
//! MQTT plugin (standard MQTT 3.1.1; the plugin is an Aedes broker). Started
//! on a free loopback port in a temp dir, killed on drop. A missing binary
//! fails the test with what to install (scripts/test.sh installs it).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::free_port;

/// Topic of the probe that tells a capture is subscribed.
pub const READY_TOPIC: &str = "vouch-test/ready";
/// The probe's payload (a line of its own in the capture file).
pub const READY_LINE: &str = "vouch-test-capture-ready";

/// A running broker; killed on drop.
#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    binary: &'static str,
    conf: std::path::PathBuf,
    _dir: TempDir,
}

/// Starts the broker and waits until it accepts connections; `None` if it
/// exited first (its port was taken meanwhile).
fn spawn(binary: &str, conf: &std::path::Path, port: u16) -> Option<Child> {
    let mut child = Command::new(binary)
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(child);
        }
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl Mosquitto {
    /// A broker without persistence.
    pub fn start() -> Mosquitto {
        Mosquitto::start_with(false)
    }

    /// With `persistent`, sessions and queued QoS 1 messages survive
    /// [`Mosquitto::restart`] (saved to the temp dir on SIGTERM).
    pub fn start_with(persistent: bool) -> Mosquitto {
        // Debian installs the broker in /usr/sbin, which a non-root PATH may lack.
        let binary = ["mosquitto", "/usr/sbin/mosquitto"]
            .into_iter()
            .find(|b| Command::new(b).arg("-h").output().is_ok())
            .expect(
                "mosquitto is not installed: apt-get install -y mosquitto mosquitto-clients \
                 (scripts/test.sh does this)",
            );
        let dir = TempDir::new().unwrap();
        let persistence = if persistent {
            // Run as root, mosquitto drops to its own user: the session
            // database must be writable by it, or persistent sessions are
            // silently lost on restart.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
            format!("persistence true\npersistence_location {}/\n", dir.path().display())
        } else {
            "persistence false\n".to_owned()
        };
        for _ in 0..5 {
            let port = free_port();
            let conf = dir.path().join("mosquitto.conf");
            std::fs::write(
                &conf,
                format!(
                    "listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n\
                     {persistence}log_dest stderr\nlog_type error\nlog_type warning\n"
                ),
            )
            .unwrap();
            if let Some(child) = spawn(binary, &conf, port) {
                return Mosquitto { child, port, binary, conf, _dir: dir };
            }
        }
        panic!("mosquitto did not start");
    }

    /// SIGTERM (a persistent broker saves its state), then waits for the exit.
    pub fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }

    /// Starts the broker again on the same port.
    pub fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = spawn(self.binary, &self.conf, self.port) {
                self.child = child;
                return;
            }
            assert!(Instant::now() < deadline, "mosquitto did not restart on {}", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// A `mosquitto_sub` that writes every message on `topic` (one per line,
    /// payloads are single-line JSON) to `out`; killed on drop. Returns once
    /// it is subscribed (a probe on [`READY_TOPIC`], whose line is
    /// [`READY_LINE`], came through).
    pub fn capture(&self, topic: &str, out: &std::path::Path) -> Capture {
        self.capture_as(topic, out, None)
    }

    /// [`Mosquitto::capture`] with a persistent session under `client_id`:
    /// the broker queues messages for it while it is disconnected, and
    /// `mosquitto_sub` reconnects by itself.
    pub fn capture_as(
        &self,
        topic: &str,
        out: &std::path::Path,
        client_id: Option<&str>,
    ) -> Capture {
        assert!(
            Command::new("mosquitto_sub").arg("--help").output().is_ok(),
            "mosquitto_sub is not installed: apt-get install -y mosquitto-clients"
        );
        let file = std::fs::File::create(out).unwrap();
        let child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q", "1"])
            .args(["-t", topic, "-t", READY_TOPIC])
            .args(client_id.map_or(Vec::new(), |id| vec!["-c", "-i", id]))
            .stdout(file)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let capture = Capture { child };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.publish(READY_TOPIC, READY_LINE.as_bytes());
            std::thread::sleep(Duration::from_millis(50));
            if std::fs::read_to_string(out).unwrap_or_default().contains(READY_LINE) {
                return capture;
            }
            assert!(Instant::now() < deadline, "mosquitto_sub never subscribed");
        }
    }

    /// Publishes `payload` on `topic` with `mosquitto_pub` (QoS 1).
    pub fn publish(&self, topic: &str, payload: &[u8]) {
        let dir = TempDir::new().unwrap();
        let file = dir.path().join("payload");
        std::fs::write(&file, payload).unwrap();
        let status = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q", "1", "-t", topic])
            .arg("-f")
            .arg(&file)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `mosquitto_sub`; killed on drop.
#[derive(Debug)]
pub struct Capture {
    child: Child,
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
