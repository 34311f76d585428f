//! Stratos as it is deployed, in either mode, for the system tests that run against both:
//! `stratos up` on the embedded defaults, or a Kafka-API broker, PostgreSQL, an S3-compatible
//! bucket for blobs, `stratos migrate` and a projector, a command service and a query service as
//! separate processes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use stratos_command::testing::S3Server;
use stratos_log::testing::Broker;
use stratos_store::MasterKey;
use stratos_store::testing::TestDatabase;

use super::{free_port, stop, stratos};

/// The admin password of every test deployment.
pub const ADMIN_PASSWORD: &str = "system-test-admin";

/// How the services are deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `stratos up`: one process, embedded log, SQLite.
    Embedded,
    /// Separate processes on Kafka and PostgreSQL.
    Distributed,
    /// `stratos up` on Kafka and PostgreSQL: one process, whose readers take its own appends
    /// from memory.
    UpOnKafka,
}

/// A running deployment, stopped when dropped.
pub struct Deployment {
    /// The mode.
    pub mode: Mode,
    /// Where writes, enrollment and admin go (the command service).
    pub writes: String,
    /// Where reads, feeds and `subscribeRecords` go (the query service).
    pub reads: String,
    /// The service DID (boundaries are qualified with it).
    pub service_did: String,
    ports: (u16, u16),
    dir: tempfile::TempDir,
    master_key: String,
    broker: Option<Broker>,
    database: Option<TestDatabase>,
    /// The distributed mode keeps blobs in an S3-compatible bucket, as several command services
    /// would share.
    objects: Option<S3Server>,
    /// Each running process with its role (`up`, `projector`, `command-service`, …).
    processes: Vec<(String, Child)>,
}

/// Settings every process gets: development authentication, two boundaries, the admin password.
const COMMON: &[&str] = &[
    "--dev-auth",
    "--allowed-domains",
    "friends,family",
    "--admin-password",
    ADMIN_PASSWORD,
];

/// How long a deployment's services get to answer their health checks.
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Deployment {
    /// Starts a deployment and waits until its HTTP services are ready.
    pub async fn start(mode: Mode) -> Self {
        stratos_command::auth::install_tls_provider();
        let (writes_port, reads_port) = match mode {
            Mode::Embedded | Mode::UpOnKafka => {
                let port = free_port();
                (port, port)
            }
            Mode::Distributed => {
                let writes = free_port();
                let reads = std::iter::repeat_with(free_port)
                    .find(|port| *port != writes)
                    .unwrap();
                (writes, reads)
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let (broker, database, objects) = match mode {
            Mode::Embedded => (None, None, None),
            Mode::Distributed => (
                Some(Broker::start()),
                Some(TestDatabase::create("postgres").await.unwrap()),
                Some(S3Server::start(dir.path(), "stratos-blobs")),
            ),
            Mode::UpOnKafka => (
                Some(Broker::start()),
                Some(TestDatabase::create("postgres").await.unwrap()),
                None,
            ),
        };
        let mut deployment = Self {
            mode,
            writes: format!("http://127.0.0.1:{writes_port}"),
            reads: format!("http://127.0.0.1:{reads_port}"),
            service_did: format!("did:web:127.0.0.1%3A{writes_port}"),
            ports: (writes_port, reads_port),
            dir,
            master_key: MasterKey::generate().to_hex().to_string(),
            broker,
            database,
            objects,
            processes: Vec::new(),
        };
        if mode == Mode::Distributed {
            let output = deployment.stratos(&["migrate"]).output().unwrap();
            assert!(output.status.success(), "migrate: {output:?}");
        }
        deployment.launch().await;
        deployment
    }

    /// A boundary of this service, qualified.
    pub fn boundary(&self, name: &str) -> String {
        format!("{}/{name}", self.service_did)
    }

    /// The working directory of the processes (the embedded data lives in `data/` below it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops every process with SIGTERM (each must exit successfully), then starts them again on
    /// the same data and ports.
    pub async fn restart(&mut self) {
        for (_, process) in self.processes.drain(..) {
            stop(process);
        }
        self.launch().await;
    }

    /// Stops everything and drops the test database.
    pub async fn finish(mut self) {
        for (_, process) in self.processes.drain(..) {
            stop(process);
        }
        if let Some(database) = self.database.take() {
            database.drop_database().await.unwrap();
        }
    }

    async fn launch(&mut self) {
        let public_url = self.writes.clone();
        let listen = |port: u16| format!("127.0.0.1:{port}");
        let roles: Vec<Vec<String>> = match self.mode {
            Mode::Embedded | Mode::UpOnKafka => {
                vec![vec!["up".into(), "--listen".into(), listen(self.ports.0)]]
            }
            Mode::Distributed => vec![
                vec!["projector".into()],
                vec![
                    "command-service".into(),
                    "--listen".into(),
                    listen(self.ports.0),
                ],
                vec![
                    "query-service".into(),
                    "--listen".into(),
                    listen(self.ports.1),
                ],
            ],
        };
        for role in roles {
            let mut command = self.stratos(&role.iter().map(String::as_str).collect::<Vec<_>>());
            if role[0] != "projector" {
                command.args(COMMON).args(["--public-url", &public_url]);
            }
            if let (Some(objects), "command-service") = (&self.objects, role[0].as_str()) {
                let bucket = objects.config();
                command
                    .args(["--blob-storage", "s3", "--s3-endpoint", &bucket.endpoint])
                    .args(["--s3-bucket", &bucket.bucket])
                    .args(["--s3-access-key", &bucket.access_key])
                    .args(["--s3-secret-key", bucket.secret_key.expose()]);
            }
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join(format!("{}.log", role[0])))
                .unwrap();
            command.stderr(log);
            self.processes
                .push((role[0].clone(), command.spawn().unwrap()));
        }
        // Ready when both answer their health checks; a process that exits first, or a minute
        // without an answer, fails the test with the processes' logs.
        let client = reqwest::Client::new();
        let deadline = Instant::now() + START_TIMEOUT;
        for base in [self.writes.clone(), self.reads.clone()] {
            loop {
                let health = client
                    .get(format!("{base}/health"))
                    .timeout(super::HEALTH_CHECK_TIMEOUT)
                    .send()
                    .await;
                if health.is_ok_and(|response| response.status().is_success()) {
                    break;
                }
                let exited = self
                    .processes
                    .iter_mut()
                    .any(|(_, process)| matches!(process.try_wait(), Ok(Some(_))));
                if exited || Instant::now() >= deadline {
                    panic!("{base} did not start\n{}", self.process_logs());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// The end of every process's log (stderr), to explain a deployment that did not start.
    fn process_logs(&mut self) -> String {
        let mut report = String::new();
        for (role, process) in &mut self.processes {
            if let Ok(Some(status)) = process.try_wait() {
                report.push_str(&format!("{role} exited: {status}\n"));
            }
        }
        let mut roles: Vec<String> = self
            .processes
            .iter()
            .map(|(role, _)| role.clone())
            .collect();
        roles.sort();
        roles.dedup();
        for role in roles {
            if let Ok(log) = std::fs::read_to_string(self.dir.path().join(format!("{role}.log"))) {
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                report.push_str(&format!("--- {role} (last lines)\n"));
                for line in tail.into_iter().rev() {
                    report.push_str(line);
                    report.push('\n');
                }
            }
        }
        report
    }

    /// `stratos <args>` with this deployment's log, database and key, and no stray settings.
    fn stratos(&self, args: &[&str]) -> Command {
        let mut command = stratos(self.dir.path());
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let (Some(broker), Some(database)) = (&self.broker, &self.database) {
            command
                .env("DATABASE_URL", &database.url)
                .env("STRATOS_MASTER_KEY", &self.master_key);
            if args[0] != "query-service" && args[0] != "migrate" {
                command
                    .env("STRATOS_KAFKA_BOOTSTRAP", broker.bootstrap())
                    .env("STRATOS_PARTITIONS", "4");
            }
        }
        command
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for (_, process) in &mut self.processes {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

/// Expands to a test per mode for each scenario `async fn name(mode: Mode)` of the file.
#[macro_export]
macro_rules! in_every_mode {
    ($($scenario:ident),+ $(,)?) => {
        $(
            mod $scenario {
                use super::support::deployment::Mode;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded() {
                    super::$scenario(Mode::Embedded).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn distributed() {
                    super::$scenario(Mode::Distributed).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn up_on_kafka() {
                    super::$scenario(Mode::UpOnKafka).await;
                }
            }
        )+
    };
}
