//! Real parts for tests (feature `testing`): a Kafka-API broker (tansu) on a free loopback port,
//! and the free ports test processes listen on.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/install-tansu` puts the broker (built with in-memory and SQLite storage),
/// unless `STRATOS_TANSU_BIN` says otherwise.
fn tansu_binary() -> PathBuf {
    if let Ok(path) = std::env::var("STRATOS_TANSU_BIN") {
        return PathBuf::from(path);
    }
    let cache = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache"));
    let tools = std::env::var("STRATOS_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| cache.join("stratos/tools"));
    tools.join("tansu-0.6.0-sqlite/bin/tansu")
}

/// A loopback port in `range` that is free now, for a child process to listen on. Tests draw
/// such ports from ranges below the kernel's ephemeral range (32768–60999 by default), a range
/// per kind of process: a port the kernel hands out meanwhile (`bind` to port 0, outgoing
/// connections) or another kind of process never takes one between its choice and its use.
pub fn unassigned_port(range: std::ops::Range<u16>) -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let span = u64::from(range.end - range.start);
    loop {
        let offset = RandomState::new().hash_one(Instant::now()) % span;
        let port = range.start + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The ports of test brokers (see [`unassigned_port`]).
const BROKER_PORTS: std::ops::Range<u16> = 14_000..20_000;

/// A running broker, stopped when dropped.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    storage: String,
    workdir: Option<PathBuf>,
}

impl Broker {
    /// Starts a broker with in-memory storage on a free port and waits until it accepts
    /// connections.
    pub fn start() -> Self {
        Self::start_with("memory://tansu/".into(), None)
    }

    /// Starts a broker that keeps its data in a SQLite file in `dir`, so it survives restarts.
    pub fn start_durable(dir: &std::path::Path) -> Self {
        // tansu reads the path of a `sqlite://` URL as relative to its working directory.
        Self::start_with("sqlite://broker.sqlite".into(), Some(dir.to_path_buf()))
    }

    fn start_with(storage: String, workdir: Option<PathBuf>) -> Self {
        let mut broker = Broker {
            child: None,
            port: unassigned_port(BROKER_PORTS),
            storage,
            workdir,
        };
        broker.spawn();
        broker
    }

    /// Kills the broker (SIGKILL) and starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// `bootstrap.servers` for this broker.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let binary = tansu_binary();
        assert!(
            binary.exists(),
            "the Kafka-API broker is not installed at {}; run scripts/install-tansu \
             (scripts/test does this)",
            binary.display()
        );
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut command = Command::new(&binary);
        if let Some(dir) = &self.workdir {
            command.current_dir(dir);
        }
        let child = command
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                &self.storage,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the broker starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the broker did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the broker (SIGKILL); [`Broker::restart`] starts it again.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
