//! An HA pair's failover (README, "High availability"): the standby adopts the leader's durable
//! state from `/api/v1/replication`, so when it takes over it announces no alert again and
//! restarts no `status_since`.
//!
//! In process: a leader and a standby `Exporter` against one simulator and one alert receiver;
//! the standby fetches over HTTP exactly as the daemon's replication loop does. End to end: two
//! exporter processes with leader election against one simulator, the fake Lease API and one
//! webhook receiver; the leader is killed with SIGKILL after it has notified.
//!
//! No timed assertions: every wait is for a condition, with a generous deadline.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cloudflare_aop_exporter::config::{Settings, SinkKind};
use cloudflare_aop_exporter::daemon::Exporter;
use cloudflare_aop_exporter::replication::{self, Fetcher, Replica};
use cloudflare_aop_exporter::server::{self, ExpiryThresholds};
use cloudflare_aop_exporter::simulator::Simulator;
use cloudflare_aop_exporter::simulator::lease::LeaseApi;
use cloudflare_aop_exporter::state::{HISTORY_FILE_NAME, Scope, Status, StatusHistory};
use common::kube::{spawn_replica, try_scrape, write_kubeconfig, write_replica_config};
use common::metrics_text::Scrape;
use common::process::free_addr;
use common::receiver::{Receiver, Reply};
use common::setup::{PAY_CERT as CERT, PAY_ZONE as ZONE, pay_scenario, sink};

const TOKEN: &str = "failover-test-token";
const HOOK: &str = "/hook";

fn settings(sim: &Simulator, receiver: &Receiver, state_dir: &Path) -> Settings {
    common::setup::pay_settings(
        sim,
        state_dir,
        vec![sink("oncall", SinkKind::Webhook, receiver.url(HOOK))],
    )
}

/// An exporter with alerts, its own state directory (kept while the guard lives).
fn exporter(sim: &Simulator, receiver: &Receiver) -> (tempfile::TempDir, Arc<Exporter>) {
    let state_dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::with_alerts(&settings(sim, receiver, state_dir.path()), true).unwrap();
    (state_dir, Arc::new(exporter))
}

/// The exporter's router with `/api/v1/replication`, as the daemon serves it; its address.
async fn serve_with_replication(exporter: &Arc<Exporter>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = server::router_with_replication(
        exporter.app_state(),
        ExpiryThresholds::default(),
        Some(replication::source(
            {
                let exporter = exporter.clone();
                move || exporter.clone()
            },
            None,
        )),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr.to_string()
}

fn certificate_since(exporter: &Exporter) -> Option<DateTime<Utc>> {
    exporter.snapshot.load().zones[ZONE].certificates[&(Scope::Hostname, CERT.to_owned())]
        .status_since
}

/// Lets a worker that wrongly had something to send send it, before counting.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

/// A simulator, a receiver, and a leader that has polled a timed-out certificate and
/// notified the receiver once.
struct NotifiedLeader {
    sim: Simulator,
    receiver: Receiver,
    dir: tempfile::TempDir,
    leader: Arc<Exporter>,
    /// The certificate's `status_since` at the leader.
    since: Option<DateTime<Utc>>,
}

async fn leader_with_a_notified_alert() -> NotifiedLeader {
    let sim = common::setup::simulator(&pay_scenario(TOKEN)).await;
    let receiver = Receiver::start(vec![], Reply::Ok).await;
    let (dir, leader) = exporter(&sim, &receiver);
    assert!(sim.set_certificate_status(ZONE, CERT, Status::DeploymentTimedOut));
    leader.cycle().await;
    assert_eq!(receiver.wait_for(HOOK, 1).await.len(), 1);
    assert_eq!(leader.alerter.as_ref().unwrap().firing().firing.len(), 1);
    let since = certificate_since(&leader);
    assert!(since.is_some());
    NotifiedLeader {
        sim,
        receiver,
        dir,
        leader,
        since,
    }
}

#[tokio::test]
async fn a_standby_that_adopted_the_leaders_state_takes_over_without_announcing_or_resetting() {
    let NotifiedLeader {
        sim,
        receiver,
        dir: _leader_dir,
        leader,
        since: leader_since,
    } = leader_with_a_notified_alert().await;
    let address = serve_with_replication(&leader).await;

    let (standby_dir, standby) = exporter(&sim, &receiver);
    let requests_before = sim.stats().total;
    let mut fetcher = Fetcher::new().unwrap();
    let (replica, etag) = fetcher
        .fetch(&address)
        .await
        .unwrap()
        .expect("a first copy");
    replica.adopt(&standby, Some(standby_dir.path()));
    fetcher.fetched(&address, etag);
    // Nothing changed since: the leader answers 304 and serializes nothing.
    assert!(fetcher.fetch(&address).await.unwrap().is_none());
    assert_eq!(
        sim.stats().total,
        requests_before,
        "replicating costs no API request"
    );
    // The standby exports what the leader does, before it ever polls.
    assert_eq!(certificate_since(&standby), leader_since);
    assert_eq!(
        standby.alerter.as_ref().unwrap().firing(),
        leader.alerter.as_ref().unwrap().firing()
    );
    // Persisted in its own state directory: a standby restarted before the takeover keeps it.
    let persisted = StatusHistory::load(standby_dir.path()).unwrap();
    assert_eq!(persisted, *leader.history.lock().unwrap());
    assert!(standby_dir.path().join(HISTORY_FILE_NAME).exists());

    // The leader dies; the standby leads and polls.
    drop(leader);
    standby.cycle().await;
    settle().await;
    assert_eq!(
        receiver.requests(HOOK).len(),
        1,
        "the alert the leader announced is not announced again"
    );
    assert_eq!(standby.alerter.as_ref().unwrap().firing().firing.len(), 1);
    assert_eq!(
        certificate_since(&standby),
        leader_since,
        "status_since is the leader's, not the takeover's"
    );
}

#[tokio::test]
async fn a_standby_that_adopted_nothing_announces_again_and_restarts_status_since() {
    // The counterpart of the test above: what adopting prevents.
    let leader = leader_with_a_notified_alert().await;
    let (_standby_dir, standby) = exporter(&leader.sim, &leader.receiver);
    tokio::time::sleep(Duration::from_millis(20)).await;
    standby.cycle().await;
    assert_eq!(leader.receiver.wait_for(HOOK, 2).await.len(), 2);
    assert_ne!(certificate_since(&standby), leader.since);
}

#[tokio::test]
async fn a_notification_the_leader_could_not_deliver_is_delivered_by_the_standby() {
    let sim = common::setup::simulator(&pay_scenario(TOKEN)).await;
    // The receiver is down for the leader: its notification stays queued.
    let receiver = Receiver::start(vec![], Reply::Status(503)).await;
    let (_leader_dir, leader) = exporter(&sim, &receiver);
    assert!(sim.set_certificate_status(ZONE, CERT, Status::DeploymentTimedOut));
    leader.cycle().await;
    receiver.wait_for(HOOK, 1).await;
    assert_eq!(leader.alerter.as_ref().unwrap().queued("oncall"), 1);
    let replica: Replica =
        serde_json::from_slice(&serde_json::to_vec(&Replica::of(&leader, None)).unwrap()).unwrap();
    drop(leader);

    let (standby_dir, standby) = exporter(&sim, &receiver);
    replica.adopt(&standby, Some(standby_dir.path()));
    receiver.answer(Reply::Ok);
    standby.cycle().await;
    common::process::wait_until("the standby's delivery", Duration::from_secs(10), || {
        !receiver.delivered(HOOK).is_empty()
    })
    .await;
    settle().await;
    assert_eq!(
        receiver.delivered(HOOK).len(),
        1,
        "the queued notification, once"
    );
    assert_eq!(standby.alerter.as_ref().unwrap().queued("oncall"), 0);
}

#[tokio::test]
async fn the_replication_route_is_absent_without_a_source() {
    let sim = common::setup::simulator(&pay_scenario(TOKEN)).await;
    let receiver = Receiver::start(vec![], Reply::Ok).await;
    let (_dir, exporter) = exporter(&sim, &receiver);
    let addr = common::setup::serve(&exporter).await;
    let error = Fetcher::new()
        .unwrap()
        .fetch(&addr.to_string())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("HTTP 404"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Two processes, SIGKILL.

const KUBE_TOKEN: &str = "failover-test-kube-token";
const NAMESPACE: &str = "monitoring";
const LEASE: &str = "aop-failover";
/// Bounds a failure only; the conditions hold within seconds (a 5 s lease, 1 s ticks).
const DEADLINE: Duration = Duration::from_secs(90);

/// A replica's config: the pay zone, and the webhook sink at the receiver.
fn process_config(
    dir: &Path,
    name: &str,
    sim: &Simulator,
    receiver: &Receiver,
    listen: SocketAddr,
) -> PathBuf {
    let sinks = format!(
        "\n[alerts]\nrepeat_interval = \"24h\"\n\n[[alerts.sinks]]\ntype = \"webhook\"\nname = \"oncall\"\nurl = \"{}\"\n",
        receiver.url(HOOK)
    );
    write_replica_config(dir, name, sim, (TOKEN, LEASE), listen, &sinks)
}

/// Scrapes `addr` until `condition` holds on it; fails after [`DEADLINE`] with both logs.
async fn wait_for_scrape(
    what: &str,
    addr: SocketAddr,
    dir: &Path,
    mut condition: impl FnMut(&Scrape) -> bool,
) -> Scrape {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        if let Some(scrape) = try_scrape(addr).await {
            if condition(&scrape) {
                return scrape;
            }
        }
        if std::time::Instant::now() > deadline {
            let log = |name: &str| {
                std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
            };
            panic!(
                "timed out waiting for {what}\n--- a\n{}\n--- b\n{}",
                log("a"),
                log("b")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn since_of(scrape: &Scrape) -> Option<f64> {
    scrape.get(
        "certificate_status_since_timestamp_seconds",
        &[("cert_id", CERT)],
    )
}

/// A gauge's or counter's value (the text format's floats hold these integers exactly).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn count(value: Option<f64>) -> u64 {
    value.unwrap_or(0.0).round() as u64
}

fn firing(scrape: &Scrape) -> u64 {
    count(scrape.get("alerts_firing", &[("reason", "deployment_timed_out")]))
}

fn successful_polls(scrape: &Scrape) -> u64 {
    count(scrape.get("polls_total", &[("outcome", "success")]))
}

fn leading(scrape: &Scrape) -> bool {
    count(scrape.get("leader", &[])) == 1
}

// Multi-threaded: the simulator, the fake Lease API and the receiver run in this runtime while
// the test blocks on a child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sigkill_of_the_leader_the_standby_polls_notifies_nothing_again_and_keeps_since() {
    let sim = common::setup::simulator(&pay_scenario(TOKEN)).await;
    let api = LeaseApi::start(Some(KUBE_TOKEN.to_owned())).await.unwrap();
    let receiver = Receiver::start(vec![], Reply::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &api.base_url(), KUBE_TOKEN, NAMESPACE);
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let a_config = process_config(dir.path(), "a", &sim, &receiver, a_addr);
    let b_config = process_config(dir.path(), "b", &sim, &receiver, b_addr);

    // a leads (it starts first), then b stands by.
    let mut a = spawn_replica(dir.path(), "a", &a_config, &kubeconfig);
    wait_for_scrape("a leading and polling", a_addr, dir.path(), |scrape| {
        leading(scrape) && successful_polls(scrape) >= 1
    })
    .await;
    let _b = spawn_replica(dir.path(), "b", &b_config, &kubeconfig);

    // The certificate times out: a notifies, once.
    assert!(sim.set_certificate_status(ZONE, CERT, Status::DeploymentTimedOut));
    assert_eq!(receiver.wait_for(HOOK, 1).await.len(), 1);
    let a_scrape = wait_for_scrape("a's alert firing", a_addr, dir.path(), |scrape| {
        firing(scrape) == 1 && since_of(scrape).is_some()
    })
    .await;
    let leader_since = since_of(&a_scrape);
    // b holds the alert and the certificate's status_since, and has spent no request.
    let b_scrape = wait_for_scrape("b replicating a", b_addr, dir.path(), |scrape| {
        firing(scrape) == 1 && since_of(scrape) == leader_since
    })
    .await;
    assert!(!leading(&b_scrape));
    assert_eq!(count(Some(b_scrape.sum("api_requests_total", &[]))), 0);
    // Ready with the leader's data (a rolling update of the pair waits for this).
    let ready = reqwest::get(format!("http://{b_addr}/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // What it replicated is on disk too: a restart before the takeover would keep it.
    let b_state = dir.path().join("b-state");
    assert!(b_state.join(HISTORY_FILE_NAME).exists());
    assert!(b_state.join("alerts.json").exists());

    // SIGKILL a: no release, so b takes over once the lease expires.
    a.0.as_mut().unwrap().kill().unwrap();
    a.0.as_mut().unwrap().wait().unwrap();
    let requests_before = sim.stats().total;
    wait_for_scrape(
        "b leading and polling twice",
        b_addr,
        dir.path(),
        |scrape| leading(scrape) && successful_polls(scrape) >= 2,
    )
    .await;
    assert!(
        sim.stats().total > requests_before,
        "the new leader polls the simulator"
    );
    settle().await;
    let b_scrape = try_scrape(b_addr).await.unwrap();
    assert_eq!(firing(&b_scrape), 1, "the alert still fires, on b now");
    assert_eq!(
        receiver.requests(HOOK).len(),
        1,
        "every alert delivered exactly once across the failover"
    );
    assert_eq!(
        since_of(&b_scrape),
        leader_since,
        "status_since does not restart at the takeover"
    );
    api.shutdown().await;
}

#[tokio::test]
async fn a_standby_refetches_only_after_the_leader_changed() {
    let sim = common::setup::simulator(&pay_scenario(TOKEN)).await;
    let receiver = Receiver::start(vec![], Reply::Ok).await;
    let (_dir, leader) = exporter(&sim, &receiver);
    leader.cycle().await;
    let address = serve_with_replication(&leader).await;
    let mut fetcher = Fetcher::new().unwrap();
    let (_, etag) = fetcher.fetch(&address).await.unwrap().unwrap();
    assert!(!etag.is_empty());
    fetcher.fetched(&address, etag.clone());
    assert!(fetcher.fetch(&address).await.unwrap().is_none());
    // A poll publishes (a new snapshot generation): the whole state again, newly tagged.
    assert!(sim.set_certificate_status(ZONE, CERT, Status::DeploymentTimedOut));
    leader.cycle().await;
    let (replica, newer) = fetcher
        .fetch(&address)
        .await
        .unwrap()
        .expect("a changed copy");
    assert_ne!(newer, etag);
    assert_eq!(replica.alerts.firing.len(), 1);
    // Another leader at the same address (a restart) never matches the old tag.
    let (_other_dir, other) = exporter(&sim, &receiver);
    let other_address = serve_with_replication(&other).await;
    fetcher.fetched(&other_address, newer);
    assert!(fetcher.fetch(&other_address).await.unwrap().is_some());
}
