//! docs/architecture.md, Bars, "Faults", end to end: for every simulator fault kind (and connection refused), the
//! real daemon (`daemon::run_on`, polling every second) goes through a healthy period, the fault
//! and back. Throughout it stays up and `/metrics` answers 200; during the fault
//! `api_errors_total` counts the fault's `reason`, `zone_poll_success` is 0 and the last good
//! series stay; afterwards it recovers without a restart (`zone_poll_success` 1 again, and a
//! status changed in the simulator during the fault shows up).
//!
//! The same for a webhook sink whose receiver fails (500), hangs past the sink timeout, or
//! refuses connections: the daemon stays up, `notifications_total{outcome="failed"}` grows,
//! and the notification is delivered once the receiver is back.
//!
//! Table-driven: one row per kind, each its own `#[tokio::test]` named after the kind, and
//! every assertion message starts with the kind.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use cloudflare_aop_exporter::config::{Settings, SinkKind, SinkSettings};
use cloudflare_aop_exporter::secret::Secret;
use cloudflare_aop_exporter::simulator::{Fault, FaultRule, Scenario, Simulator};
use cloudflare_aop_exporter::state::Status;
use common::metrics_text::Scrape;
use common::process::free_addr;
use common::receiver::{Receiver, Reply};
use common::setup::{fast_retries, sink, zone};
use url::Url;

const ZONE: &str = "3a7f00000000000000000000000000aa";
/// Stays `active` throughout: its series are the "last good data" that must stay.
const CERT_KEPT: &str = "30000000-0000-4000-8000-00000000000a";
/// Its status changes in the simulator during the fault; the change must show up afterwards.
const CERT_CHANGED: &str = "30000000-0000-4000-8000-00000000000b";
const TOKEN: &str = "fault-matrix-token";
const SINK: &str = "matrix-hook";
/// The daemon's per-attempt API timeout; `Hang` and the slow latency row go beyond it.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// Bodies above this are refused (`HugeBody` sends more).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// The webhook sink's per-attempt timeout; the hanging receiver goes beyond it.
const SINK_TIMEOUT: Duration = Duration::from_millis(300);
/// How long any one phase may take to show what it should (cycles run every second).
const PHASE_LIMIT: Duration = Duration::from_secs(15);

const SCENARIO: &str = include_str!("scenarios/fault-matrix.toml");

fn scenario() -> Scenario {
    common::setup::scenario(SCENARIO)
}

fn settings(base_url: Url, state_dir: &Path, sinks: Vec<SinkSettings>) -> Settings {
    let zone = zone(
        ZONE,
        "matrix.example",
        &["www.matrix.example", "api.matrix.example"],
    );
    let mut settings = Settings::for_demo(base_url, Secret::new(TOKEN), vec![zone]);
    fast_retries(&mut settings, 1);
    let cloudflare = &mut settings.cloudflare;
    cloudflare.verify_token = false;
    cloudflare.request_timeout = REQUEST_TIMEOUT;
    cloudflare.max_retry_after = Duration::from_secs(2);
    cloudflare.max_response_bytes = MAX_RESPONSE_BYTES;
    // A cycle a second for a minute must not run into the client's own request budget.
    cloudflare.requests_per_5m = 1_000_000;
    "*/1 * * * * *".clone_into(&mut settings.schedule.cron);
    settings.schedule.jitter = Duration::ZERO;
    settings.state.dir = state_dir.to_path_buf();
    settings.alerts.sinks = sinks;
    settings
}

// ---------------------------------------------------------------------------------------------
// Scrapes.

/// What the rows read from a scrape of the matrix zone.
trait MatrixScrape {
    fn zone_ok(&self) -> Option<f64>;
    fn cert_status(&self, cert_id: &str, status: &str) -> Option<f64>;
    fn errors(&self, reason: &str) -> f64;
    fn all_errors(&self) -> f64;
    fn notifications(&self, outcome: &str) -> f64;

    /// `certificate_status{status="active"}` of `cert_id` is `expected`; `context` on failure.
    fn assert_active(&self, cert_id: &str, expected: f64, context: &str) {
        assert_eq!(
            self.cert_status(cert_id, "active"),
            Some(expected),
            "{context}"
        );
    }
}

impl MatrixScrape for Scrape {
    fn zone_ok(&self) -> Option<f64> {
        self.get("zone_poll_success", &[("zone_id", ZONE)])
    }

    fn cert_status(&self, cert_id: &str, status: &str) -> Option<f64> {
        self.get(
            "certificate_status",
            &[
                ("zone_id", ZONE),
                ("scope", "hostname"),
                ("cert_id", cert_id),
                ("status", status),
            ],
        )
    }

    fn errors(&self, reason: &str) -> f64 {
        self.sum("api_errors_total", &[("reason", reason)])
    }

    fn all_errors(&self) -> f64 {
        self.sum("api_errors_total", &[])
    }

    fn notifications(&self, outcome: &str) -> f64 {
        self.sum(
            "notifications_total",
            &[("sink", SINK), ("outcome", outcome)],
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon under test.

/// The daemon (see [`common::setup::Daemon`]) with the row's name for every message.
struct Daemon {
    kind: &'static str,
    running: common::setup::Daemon,
    addr: SocketAddr,
    http: reqwest::Client,
    _state: tempfile::TempDir,
}

impl Daemon {
    async fn start(kind: &'static str, base_url: Url, sinks: Vec<SinkSettings>) -> Daemon {
        let state = tempfile::tempdir().unwrap();
        let running = common::setup::Daemon::start(settings(base_url, state.path(), sinks)).await;
        Daemon {
            kind,
            addr: running.addr,
            running,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            _state: state,
        }
    }

    /// GET /metrics: the daemon is still running and it answers 200.
    async fn scrape(&self) -> Scrape {
        let kind = self.kind;
        assert!(
            !self.running.task.is_finished(),
            "{kind}: the daemon stopped"
        );
        let response = self
            .http
            .get(format!("http://{}/metrics", self.addr))
            .send()
            .await
            .unwrap_or_else(|error| panic!("{kind}: /metrics did not answer: {error}"));
        assert_eq!(response.status(), 200, "{kind}: /metrics status");
        Scrape::parse(&response.text().await.unwrap())
    }

    /// Scrapes (every 100 ms) until `done`; `each` checks every scrape on the way.
    async fn scrape_until(
        &self,
        phase: &str,
        mut each: impl FnMut(&Scrape),
        mut done: impl FnMut(&Scrape) -> bool,
    ) -> Scrape {
        let deadline = Instant::now() + PHASE_LIMIT;
        loop {
            let scrape = self.scrape().await;
            each(&scrape);
            if done(&scrape) {
                return scrape;
            }
            assert!(
                Instant::now() < deadline,
                "{}: timed out after {PHASE_LIMIT:?} waiting for: {phase}",
                self.kind
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Scrapes for `period`, checking each.
    async fn scrape_for(&self, period: Duration, mut each: impl FnMut(&Scrape)) {
        let end = Instant::now() + period;
        while Instant::now() < end {
            each(&self.scrape().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(self) {
        let kind = self.kind;
        self.running
            .stop()
            .await
            .unwrap_or_else(|error| panic!("{kind}: the daemon failed: {error}"));
    }
}

// ---------------------------------------------------------------------------------------------
// API faults.

/// How the fault is caused.
enum Injection {
    /// This simulator fault on every request.
    Rule(Fault),
    /// The simulator stops listening; a new one on the same port ends the fault.
    ConnectionRefused,
}

/// What the daemon must show during the fault.
enum Expect {
    /// Polls fail and `api_errors_total{reason}` grows.
    Failing(&'static str),
    /// Polls still succeed (slow but inside the timeout): no errors, fresh data.
    Healthy,
}

struct Row {
    kind: &'static str,
    injection: Injection,
    expect: Expect,
}

/// One row: healthy → fault → healthy again, scraping throughout.
async fn run_row(row: Row) {
    let Row {
        kind,
        injection,
        expect,
    } = row;
    let sim = Simulator::start(scenario()).await.unwrap();
    let sim_addr = sim.addr();
    let daemon = Daemon::start(kind, sim.base_url(), Vec::new()).await;

    // Healthy.
    let healthy = daemon
        .scrape_until(
            "the first successful poll",
            |_| {},
            |m| m.zone_ok() == Some(1.0) && m.cert_status(CERT_CHANGED, "active") == Some(1.0),
        )
        .await;
    healthy.assert_active(CERT_KEPT, 1.0, kind);
    let errors_before = healthy.all_errors();

    // The fault; the status changes behind it (after it is in place, so no poll sees it).
    let sim = match injection {
        Injection::Rule(fault) => {
            sim.add_fault(FaultRule::always(fault));
            assert!(sim.set_certificate_status(ZONE, CERT_CHANGED, Status::PendingDeployment));
            Some(sim)
        }
        Injection::ConnectionRefused => {
            sim.shutdown().await;
            None
        }
    };
    during_fault(&daemon, &expect, &healthy).await;

    // Back to normal, without restarting the daemon.
    let sim = end_fault(sim, sim_addr).await;
    let recovered = daemon
        .scrape_until(
            "recovery: zone_poll_success 1 and the new status",
            |_| {},
            |m| {
                m.zone_ok() == Some(1.0)
                    && m.cert_status(CERT_CHANGED, "pending_deployment") == Some(1.0)
            },
        )
        .await;
    let one_hot = format!("{kind}: StateSet one-hot after recovery");
    recovered.assert_active(CERT_CHANGED, 0.0, &one_hot);
    recovered.assert_active(CERT_KEPT, 1.0, kind);
    if matches!(expect, Expect::Healthy) {
        assert!(
            (recovered.all_errors() - errors_before).abs() < f64::EPSILON,
            "{kind}: no API errors expected"
        );
    }
    daemon.stop().await;
    sim.shutdown().await;
}

/// The fault is on: what the daemon must show while it lasts.
async fn during_fault(daemon: &Daemon, expect: &Expect, healthy: &Scrape) {
    let kind = daemon.kind;
    let errors_before = healthy.all_errors();
    let last_good = |m: &Scrape| {
        // The last good data stays: both certificates, with what the last good poll saw.
        let kept = format!("{kind}: the known certificate's series went away during the fault");
        m.assert_active(CERT_KEPT, 1.0, &kept);
        let changed = format!("{kind}: a failing poll changed the certificate's status");
        m.assert_active(CERT_CHANGED, 1.0, &changed);
    };
    match *expect {
        Expect::Failing(reason) => {
            let during = daemon
                .scrape_until(
                    &format!(
                        "api_errors_total{{reason=\"{reason}\"}} to grow and zone_poll_success 0"
                    ),
                    last_good,
                    |m| m.errors(reason) > healthy.errors(reason) && m.zone_ok() == Some(0.0),
                )
                .await;
            assert!(
                during.all_errors() > errors_before,
                "{kind}: errors counted"
            );
            // The baseline comes from the first failing scrape, not the healthy one: a cycle
            // that fetched everything just before the fault may still succeed after it.
            let last_success =
                during.get("zone_last_success_timestamp_seconds", &[("zone_id", ZONE)]);
            // Several failing cycles later the last good data is still there.
            daemon
                .scrape_for(Duration::from_millis(1500), |m| {
                    last_good(m);
                    assert_eq!(
                        m.get("zone_last_success_timestamp_seconds", &[("zone_id", ZONE)]),
                        last_success,
                        "{kind}: zone_last_success moved during the fault"
                    );
                    assert_eq!(
                        m.zone_ok(),
                        Some(0.0),
                        "{kind}: zone_poll_success during the fault"
                    );
                })
                .await;
        }
        Expect::Healthy => {
            daemon
                .scrape_until(
                    "the status change to show up while slow",
                    |m| assert_eq!(m.zone_ok(), Some(1.0), "{kind}: a slow poll failed"),
                    |m| m.cert_status(CERT_CHANGED, "pending_deployment") == Some(1.0),
                )
                .await;
        }
    }
}

/// Ends the fault: clears the rules, or starts a simulator on the refused port again (with the
/// status change made while it was down).
async fn end_fault(sim: Option<Simulator>, addr: SocketAddr) -> Simulator {
    if let Some(sim) = sim {
        sim.clear_faults();
        return sim;
    }
    let sim = Simulator::start_on(addr, scenario()).await.unwrap();
    assert!(sim.set_certificate_status(ZONE, CERT_CHANGED, Status::PendingDeployment));
    sim
}

macro_rules! fault_rows {
    ($($test:ident: $kind:literal, $injection:expr, $expect:expr;)*) => {$(
        #[tokio::test]
        async fn $test() {
            run_row(Row { kind: $kind, injection: $injection, expect: $expect }).await;
        }
    )*};
}

fault_rows! {
    fault_latency_within_the_timeout: "latency (200 ms, under the timeout)",
        Injection::Rule(Fault::Latency { ms: 200 }), Expect::Healthy;
    fault_latency_beyond_the_timeout: "latency (800 ms, beyond the 500 ms timeout)",
        Injection::Rule(Fault::Latency { ms: 800 }), Expect::Failing("timeout");
    fault_server_error: "server_error (503)",
        Injection::Rule(Fault::ServerError { status: 503 }), Expect::Failing("server_error");
    fault_rate_limited: "rate_limited (429, Retry-After: 1)",
        Injection::Rule(Fault::RateLimited { retry_after_secs: 1 }), Expect::Failing("rate_limited");
    fault_malformed_json: "malformed_json",
        Injection::Rule(Fault::MalformedJson), Expect::Failing("decode");
    fault_success_false: "success_false",
        Injection::Rule(Fault::SuccessFalse { code: 1002, message: "simulated failure".into() }),
        Expect::Failing("api_error");
    fault_truncated: "truncated body",
        Injection::Rule(Fault::Truncated), Expect::Failing("network");
    fault_hang: "hang (beyond the timeout)",
        Injection::Rule(Fault::Hang), Expect::Failing("timeout");
    fault_huge_body: "huge_body (256 KiB over a 64 KiB cap)",
        Injection::Rule(Fault::HugeBody { bytes: 256 * 1024 }), Expect::Failing("decode");
    fault_wrong_types: "wrong_types",
        Injection::Rule(Fault::WrongTypes), Expect::Failing("decode");
    fault_auth_failure: "auth_failure (403, code 10000)",
        Injection::Rule(Fault::AuthFailure), Expect::Failing("forbidden");
    fault_connection_refused: "connection refused",
        Injection::ConnectionRefused, Expect::Failing("network");
}

// ---------------------------------------------------------------------------------------------
// Webhook sinks that fail.

/// What the receiver does until it is fixed.
#[derive(Debug, Clone, Copy)]
enum SinkFault {
    Status500,
    Hang,
    Refused,
}

/// The receiver's answer once it is fixed: 204, the notification accepted.
const ACCEPT: Reply = Reply::Status(204);

async fn run_sink_row(kind: &'static str, fault: SinkFault) {
    let sim = Simulator::start(scenario()).await.unwrap();
    // A free port; for `Refused` nothing listens on it until the receiver is fixed.
    let addr = free_addr();
    let mut receiver = match fault {
        SinkFault::Status500 => {
            Some(Receiver::start_on(addr, Vec::new(), Reply::Status(500)).await)
        }
        SinkFault::Hang => Some(Receiver::start_on(addr, Vec::new(), Reply::Hang).await),
        SinkFault::Refused => None,
    };
    let mut sink = sink(
        SINK,
        SinkKind::Webhook,
        Url::parse(&format!("http://{addr}/hook")).unwrap(),
    );
    sink.timeout = SINK_TIMEOUT;
    let daemon = Daemon::start(kind, sim.base_url(), vec![sink]).await;
    daemon
        .scrape_until(
            "the first successful poll",
            |_| {},
            |m| m.zone_ok() == Some(1.0),
        )
        .await;

    // An alert fires; its notification cannot be delivered.
    assert!(sim.set_certificate_status(ZONE, CERT_CHANGED, Status::DeploymentTimedOut));
    let polls_fine = |m: &Scrape| {
        assert_eq!(
            m.zone_ok(),
            Some(1.0),
            "{kind}: polling suffers from the sink"
        );
    };
    daemon
        .scrape_until(
            "notifications_total{outcome=\"failed\"} to reach 2",
            polls_fine,
            |m| m.notifications("failed") >= 2.0,
        )
        .await;
    assert!(
        receiver
            .as_ref()
            .is_none_or(|receiver| receiver.delivered("/hook").is_empty()),
        "{kind}: nothing can have been delivered yet"
    );

    // The receiver is back: the queued notification goes out.
    let receiver = match receiver.take() {
        Some(receiver) => {
            receiver.answer(ACCEPT);
            receiver
        }
        None => Receiver::start_on(addr, Vec::new(), ACCEPT).await,
    };
    let delivered = daemon
        .scrape_until(
            "delivery once the receiver is back, and an empty queue",
            polls_fine,
            |m| {
                m.notifications("sent") >= 1.0
                    && m.get("notification_queue_length", &[("sink", SINK)]) == Some(0.0)
            },
        )
        .await;
    assert!(
        delivered.notifications("failed") >= 2.0,
        "{kind}: failed attempts counted"
    );
    let bodies: Vec<String> = receiver
        .delivered("/hook")
        .iter()
        .map(common::receiver::Recorded::text)
        .collect();
    assert!(
        bodies
            .iter()
            .any(|body| body.contains(CERT_CHANGED) && body.contains("deployment_timed_out")),
        "{kind}: the firing alert was delivered: {bodies:?}"
    );
    daemon.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn sink_answering_500() {
    run_sink_row("webhook sink answering 500", SinkFault::Status500).await;
}

#[tokio::test]
async fn sink_hanging_beyond_its_timeout() {
    run_sink_row("webhook sink hanging beyond its timeout", SinkFault::Hang).await;
}

#[tokio::test]
async fn sink_refusing_connections() {
    run_sink_row("webhook sink refusing connections", SinkFault::Refused).await;
}
