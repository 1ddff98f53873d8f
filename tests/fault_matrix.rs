//! SPEC §9 "Faults", end to end: for every simulator fault kind (and connection refused), the
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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use cloudflare_aop_exporter::config::{
    SecretUrl, Settings, SinkKind, SinkSettings, Sourced, ZoneSettings,
};
use cloudflare_aop_exporter::daemon::{self, DaemonError};
use cloudflare_aop_exporter::secret::Secret;
use cloudflare_aop_exporter::simulator::{Fault, FaultRule, Scenario, Simulator};
use cloudflare_aop_exporter::state::Status;
use tokio::task::JoinHandle;
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

const SCENARIO: &str = r#"
[auth]
token = "fault-matrix-token"

[[zones]]
id = "3a7f00000000000000000000000000aa"
name = "matrix.example"
zone_level_enabled = true

[[zones.certificates]]
id = "30000000-0000-4000-8000-00000000000a"
common_name = "origin.matrix.example"
not_before = "-10d"
not_after = "80d"
status = "active"

[[zones.certificates]]
id = "30000000-0000-4000-8000-00000000000b"
common_name = "api-origin.matrix.example"
not_before = "-10d"
not_after = "90d"
status = "active"

[[zones.zone_certificates]]
id = "30000000-0000-4000-8000-00000000000c"
common_name = "zone.matrix.example"
not_before = "-1d"
not_after = "200d"
status = "active"

[[zones.hostnames]]
name = "www.matrix.example"
cert_id = "30000000-0000-4000-8000-00000000000a"

[[zones.hostnames]]
name = "api.matrix.example"
cert_id = "30000000-0000-4000-8000-00000000000b"
"#;

fn scenario() -> Scenario {
    Scenario::from_toml_str(SCENARIO, None).expect("the fault matrix scenario parses")
}

fn settings(base_url: Url, state_dir: &Path, sinks: Vec<SinkSettings>) -> Settings {
    let mut zone = ZoneSettings::new(
        ZONE,
        vec!["www.matrix.example".into(), "api.matrix.example".into()],
    );
    zone.name = "matrix.example".into();
    let mut settings = Settings::for_demo(base_url, Secret::new(TOKEN), vec![zone]);
    let cloudflare = &mut settings.cloudflare;
    cloudflare.verify_token = false;
    cloudflare.request_timeout = REQUEST_TIMEOUT;
    cloudflare.max_retries = 1;
    cloudflare.retry_initial_backoff = Duration::from_millis(5);
    cloudflare.retry_max_backoff = Duration::from_millis(20);
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

/// One parsed `/metrics` answer.
struct Scrape {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
                let value: f64 = value.parse().expect("a sample value is a number");
                match series.split_once('{') {
                    None => (series.to_owned(), BTreeMap::new(), value),
                    Some((name, labels)) => (name.to_owned(), parse_labels(labels), value),
                }
            })
            .collect();
        Scrape { samples }
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = f64> + 'a {
        let name = format!("cloudflare_aop_{name}");
        self.samples
            .iter()
            .filter(move |(sample, have, _)| {
                *sample == name
                    && labels
                        .iter()
                        .all(|(key, want)| have.get(*key).is_some_and(|value| value == want))
            })
            .map(|(_, _, value)| *value)
    }

    /// The one series of `name` with these labels (among others), if present.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(name, labels).next()
    }

    /// The sum over every series of `name` with these labels.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).sum()
    }

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

/// `k="v",k2="v2"}` → map (Prometheus text escapes: `\\`, `\"`, `\n`).
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((index, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, escaped)) => value.push(escaped),
                    None => {}
                },
                '"' => {
                    end = index + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = &after[end..];
    }
    labels
}

// ---------------------------------------------------------------------------------------------
// The daemon under test.

/// `daemon::run_on` on a free loopback port; stopped by [`Daemon::stop`] (or aborted with the
/// test's runtime when a test fails).
struct Daemon {
    kind: &'static str,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<Result<(), DaemonError>>,
    http: reqwest::Client,
    _state: tempfile::TempDir,
}

impl Daemon {
    async fn start(kind: &'static str, base_url: Url, sinks: Vec<SinkSettings>) -> Daemon {
        let state = tempfile::tempdir().unwrap();
        let settings = settings(base_url, state.path(), sinks);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(daemon::run_on(settings, listener, async {
            let _ = stopped.await;
        }));
        Daemon {
            kind,
            addr,
            stop: Some(stop),
            task,
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
        assert!(!self.task.is_finished(), "{kind}: the daemon stopped");
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

    async fn stop(mut self) {
        let kind = self.kind;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(40), &mut self.task)
            .await
            .unwrap_or_else(|_| panic!("{kind}: the daemon did not stop"));
        result
            .unwrap()
            .unwrap_or_else(|error| panic!("{kind}: the daemon failed: {error}"));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failed test still stops the daemon (the runtime going away would too).
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
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
    assert_eq!(
        healthy.cert_status(CERT_KEPT, "active"),
        Some(1.0),
        "{kind}"
    );
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
    assert_eq!(
        recovered.cert_status(CERT_CHANGED, "active"),
        Some(0.0),
        "{kind}: StateSet one-hot after recovery"
    );
    assert_eq!(
        recovered.cert_status(CERT_KEPT, "active"),
        Some(1.0),
        "{kind}"
    );
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
        assert_eq!(
            m.cert_status(CERT_KEPT, "active"),
            Some(1.0),
            "{kind}: the known certificate's series went away during the fault"
        );
        assert_eq!(
            m.cert_status(CERT_CHANGED, "active"),
            Some(1.0),
            "{kind}: a failing poll changed the certificate's status"
        );
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

/// How the receiver treats a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Accept,
    /// 500.
    Fail,
    /// Never answers (beyond the sink timeout).
    Hang,
}

#[derive(Clone, Default)]
struct Received {
    mode: Arc<Mutex<Option<Mode>>>,
    /// Bodies answered 2xx.
    delivered: Arc<Mutex<Vec<String>>>,
    attempts: Arc<Mutex<usize>>,
}

async fn receive(
    axum::extract::State(state): axum::extract::State<Received>,
    body: String,
) -> axum::response::Response {
    *state.attempts.lock().unwrap() += 1;
    let mode = state.mode.lock().unwrap().unwrap_or(Mode::Accept);
    match mode {
        Mode::Accept => {
            state.delivered.lock().unwrap().push(body);
            StatusCode::NO_CONTENT.into_response()
        }
        Mode::Fail => (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response(),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

async fn start_receiver(addr: SocketAddr, state: Received) -> JoinHandle<()> {
    let router = axum::Router::new().fallback(receive).with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    })
}

/// What the receiver does until it is fixed.
#[derive(Debug, Clone, Copy)]
enum SinkFault {
    Status500,
    Hang,
    Refused,
}

async fn run_sink_row(kind: &'static str, fault: SinkFault) {
    let sim = Simulator::start(scenario()).await.unwrap();
    let received = Received::default();
    // A free port; for `Refused` nothing listens on it until the receiver is fixed.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut receiver_task = None;
    match fault {
        SinkFault::Status500 => *received.mode.lock().unwrap() = Some(Mode::Fail),
        SinkFault::Hang => *received.mode.lock().unwrap() = Some(Mode::Hang),
        SinkFault::Refused => {}
    }
    if !matches!(fault, SinkFault::Refused) {
        receiver_task = Some(start_receiver(addr, received.clone()).await);
    }
    let sink = SinkSettings {
        name: SINK.to_owned(),
        kind: SinkKind::Webhook,
        url: Sourced::inline(SecretUrl::new(
            Url::parse(&format!("http://{addr}/hook")).unwrap(),
        )),
        hmac_secret: None,
        timeout: SINK_TIMEOUT,
        max_age: Duration::from_secs(3600),
    };
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
        received.delivered.lock().unwrap().is_empty(),
        "{kind}: nothing can have been delivered yet"
    );

    // The receiver is back: the queued notification goes out.
    *received.mode.lock().unwrap() = Some(Mode::Accept);
    if receiver_task.is_none() {
        receiver_task = Some(start_receiver(addr, received.clone()).await);
    }
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
    {
        let bodies = received.delivered.lock().unwrap();
        assert!(
            bodies
                .iter()
                .any(|body| body.contains(CERT_CHANGED) && body.contains("deployment_timed_out")),
            "{kind}: the firing alert was delivered: {bodies:?}"
        );
    }
    daemon.stop().await;
    sim.shutdown().await;
    if let Some(task) = receiver_task {
        task.abort();
    }
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
