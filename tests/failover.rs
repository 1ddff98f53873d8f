//! An HA pair's failover (README, "High availability"): the standby adopts the leader's durable
//! state from `/api/v1/replication`, so when it takes over it announces no alert again and
//! restarts no `status_since`.
//!
//! In process: a leader and a standby `Exporter` against one simulator and one alert receiver;
//! the standby fetches over HTTP exactly as the daemon's replication loop does.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cloudflare_aop_exporter::config::{Settings, SinkKind};
use cloudflare_aop_exporter::daemon::Exporter;
use cloudflare_aop_exporter::replication::{self, Fetcher, Replica};
use cloudflare_aop_exporter::server::{self, ExpiryThresholds};
use cloudflare_aop_exporter::simulator::Simulator;
use cloudflare_aop_exporter::state::{HISTORY_FILE_NAME, Scope, Status, StatusHistory};
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

/// The leader has polled a timed-out certificate and notified the receiver once.
async fn leader_with_a_notified_alert(
    sim: &Simulator,
    receiver: &Receiver,
) -> (tempfile::TempDir, Arc<Exporter>) {
    let (dir, leader) = exporter(sim, receiver);
    assert!(sim.set_certificate_status(ZONE, CERT, Status::DeploymentTimedOut));
    leader.cycle().await;
    assert_eq!(receiver.wait_for(HOOK, 1).await.len(), 1);
    assert_eq!(leader.alerter.as_ref().unwrap().firing().firing.len(), 1);
    assert!(certificate_since(&leader).is_some());
    (dir, leader)
}

#[tokio::test]
async fn a_standby_that_adopted_the_leaders_state_takes_over_without_announcing_or_resetting() {
    let sim = common::setup::simulator(&pay_scenario(TOKEN)).await;
    let receiver = Receiver::start(vec![], Reply::Ok).await;
    let (_leader_dir, leader) = leader_with_a_notified_alert(&sim, &receiver).await;
    let leader_since = certificate_since(&leader);
    let address = serve_with_replication(&leader).await;

    let (standby_dir, standby) = exporter(&sim, &receiver);
    let requests_before = sim.stats().total;
    let replica = Fetcher::new().unwrap().fetch(&address).await.unwrap();
    replica.adopt(&standby, Some(standby_dir.path()));
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
    let sim = common::setup::simulator(&pay_scenario(TOKEN)).await;
    let receiver = Receiver::start(vec![], Reply::Ok).await;
    let (_leader_dir, leader) = leader_with_a_notified_alert(&sim, &receiver).await;
    let leader_since = certificate_since(&leader);
    let (_standby_dir, standby) = exporter(&sim, &receiver);
    tokio::time::sleep(Duration::from_millis(20)).await;
    standby.cycle().await;
    assert_eq!(receiver.wait_for(HOOK, 2).await.len(), 2);
    assert_ne!(certificate_since(&standby), leader_since);
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
