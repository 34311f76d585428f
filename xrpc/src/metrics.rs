//! Prometheus metrics: one recorder per process, rendered at `GET /metrics`.
//!
//! Recorded here: `stratos_xrpc_requests_total{method,status}`,
//! `stratos_xrpc_request_seconds{method}`, `stratos_write_retries_total`,
//! `stratos_subscribers` (open `subscribeRecords` connections); the projectors add
//! `stratos_projector_events_total{projector,outcome}`, `stratos_projector_batch_seconds` and
//! `stratos_projector_decide_seconds`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: fine between 5 and 100 ms, where a write's stages fall.
const BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0,
    2.0, 5.0,
];

/// How often the recorded histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The process's recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        let builder = builder
            .set_buckets(BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // A recorder built this way keeps every histogram sample until it is drained; without
        // a scrape that would grow with every request, so a thread drains them regularly.
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "metrics: no upkeep thread; histograms grow until scraped");
        }
        // Another recorder may already be installed (e.g. by an embedding program); then this
        // one only renders what it recorded itself, which is nothing.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Counts one XRPC request and records its latency (`method` must come from a fixed set, so
/// callers cannot grow the labels).
pub fn record_request(method: &str, status: u16, started: std::time::Instant) {
    metrics::counter!(
        "stratos_xrpc_requests_total",
        "method" => method.to_string(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!("stratos_xrpc_request_seconds", "method" => method.to_string())
        .record(started.elapsed().as_secs_f64());
}
