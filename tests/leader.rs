//! Leader election end to end: two exporter processes against one simulator and one fake
//! Lease API (found through a kubeconfig, as in a cluster it would be through the service
//! account). Exactly one polls; SIGKILL it and the other takes over and polls.
//!
//! No timed assertions: every wait is for a condition, with a generous deadline.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cloudflare_aop_exporter::simulator::Simulator;
use cloudflare_aop_exporter::simulator::lease::LeaseApi;
use common::kube::{spawn_replica, try_scrape, write_kubeconfig, write_replica_config};
use common::process::{ChildGuard, binary, free_addr};
use common::setup::pay_scenario;

const TOKEN: &str = "leader-test-cloudflare-token";
const KUBE_TOKEN: &str = "leader-test-kube-token";
const NAMESPACE: &str = "monitoring";
const LEASE: &str = "aop-pair";
/// Bounds a failure only; the conditions hold within seconds (a 5 s lease, 1 s ticks).
const DEADLINE: Duration = Duration::from_secs(90);

/// A replica's config: the pay zone, no sinks.
fn write_config(dir: &Path, name: &str, sim: &Simulator, listen: SocketAddr) -> PathBuf {
    write_replica_config(dir, name, sim, (TOKEN, LEASE), listen, "")
}

/// What one instance says of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    leader: bool,
    api_requests: u64,
    successful_polls: u64,
}

/// A counter's value (the text format's floats hold these integers exactly).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn count(value: f64) -> u64 {
    value.round() as u64
}

async fn seen(addr: SocketAddr) -> Option<Seen> {
    let scrape = try_scrape(addr).await?;
    Some(Seen {
        leader: count(scrape.get("leader", &[])?) == 1,
        api_requests: count(scrape.sum("api_requests_total", &[])),
        successful_polls: count(
            scrape
                .get("polls_total", &[("outcome", "success")])
                .unwrap_or(0.0),
        ),
    })
}

/// Polls `condition` on both instances' metrics until it holds; fails after [`DEADLINE`].
async fn wait_for(
    what: &str,
    addrs: [SocketAddr; 2],
    dir: &Path,
    mut condition: impl FnMut(Option<Seen>, Option<Seen>) -> bool,
) -> (Option<Seen>, Option<Seen>) {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let (a, b) = (seen(addrs[0]).await, seen(addrs[1]).await);
        if condition(a, b) {
            return (a, b);
        }
        if std::time::Instant::now() > deadline {
            let logs: Vec<String> = ["a", "b"]
                .iter()
                .map(|name| {
                    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
                })
                .collect();
            panic!(
                "timed out waiting for {what}: a {a:?}, b {b:?}\n--- a\n{}\n--- b\n{}",
                logs[0], logs[1]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// Multi-threaded: the fake Lease API runs in this runtime while the test blocks on a child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_two_polls_and_the_standby_takes_over_after_a_sigkill() {
    let sim = common::setup::simulator(&pay_scenario(TOKEN)).await;
    let api = LeaseApi::start(Some(KUBE_TOKEN.to_owned())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &api.base_url(), KUBE_TOKEN, NAMESPACE);
    let addrs = [free_addr(), free_addr()];
    let configs = [
        write_config(dir.path(), "a", &sim, addrs[0]),
        write_config(dir.path(), "b", &sim, addrs[1]),
    ];
    let mut a = spawn_replica(dir.path(), "a", &configs[0], &kubeconfig);
    let mut b = spawn_replica(dir.path(), "b", &configs[1], &kubeconfig);

    // One leads and has polled a few times; the other stands by.
    let (seen_a, seen_b) = wait_for("one leader that has polled", addrs, dir.path(), |a, b| {
        let (Some(a), Some(b)) = (a, b) else {
            return false;
        };
        a.leader != b.leader && a.successful_polls.max(b.successful_polls) >= 3
    })
    .await;
    let (seen_a, seen_b) = (seen_a.unwrap(), seen_b.unwrap());
    let (leader, standby, standby_addr) = if seen_a.leader {
        ("a", seen_b, addrs[1])
    } else {
        ("b", seen_a, addrs[0])
    };
    assert!(!standby.leader);
    assert_eq!(
        standby.api_requests, 0,
        "the standby spends no Cloudflare request"
    );
    assert_eq!(standby.successful_polls, 0, "the standby does not poll");
    let lease = api
        .lease(NAMESPACE, LEASE)
        .expect("the Lease exists in the context's namespace");
    assert_eq!(lease["spec"]["holderIdentity"], leader);
    let leader_addr = if leader == "a" { addrs[0] } else { addrs[1] };
    assert_eq!(
        lease["metadata"]["annotations"]["cloudflare-aop-exporter/address"],
        leader_addr.to_string(),
        "the leader publishes where its HTTP server is"
    );
    // Still standing by a few ticks later (its counters have not moved).
    let requests_before = sim.stats().total;
    wait_for(
        "a few more ticks of the leader",
        addrs,
        dir.path(),
        |_, _| sim.stats().total >= requests_before + 3,
    )
    .await;
    let still = seen(standby_addr).await.unwrap();
    assert_eq!((still.leader, still.api_requests), (false, 0));

    // SIGKILL the leader: no release, so the standby waits for the lease to expire.
    let killed = if leader == "a" { &mut a } else { &mut b };
    killed.0.as_mut().unwrap().kill().unwrap();
    killed.0.as_mut().unwrap().wait().unwrap();
    let before_takeover = sim.stats().total;
    let standby_index = usize::from(leader == "a");
    let (seen_a, seen_b) = wait_for("the standby to lead and poll", addrs, dir.path(), |a, b| {
        let new = if standby_index == 0 { a } else { b };
        new.is_some_and(|new| new.leader && new.successful_polls >= 1 && new.api_requests > 0)
    })
    .await;
    let new_leader = if standby_index == 0 { seen_a } else { seen_b }.unwrap();
    assert!(new_leader.leader);
    assert!(
        sim.stats().total > before_takeover,
        "the simulator sees the new leader's requests"
    );
    let lease = api.lease(NAMESPACE, LEASE).unwrap();
    assert_eq!(
        lease["spec"]["holderIdentity"],
        if leader == "a" { "b" } else { "a" }
    );
    assert_eq!(lease["spec"]["leaseTransitions"], 1);

    // A clean shutdown releases the Lease.
    let survivor = if leader == "a" { b } else { a };
    let survivor_name = if leader == "a" { "b" } else { "a" };
    survivor.terminate_and_collect();
    let log = std::fs::read_to_string(dir.path().join(format!("{survivor_name}.log"))).unwrap();
    assert!(log.contains("Lease released"), "{log}");
    // Neither credential is ever logged.
    for name in ["a", "b"] {
        let log = std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap();
        assert!(
            !log.contains(KUBE_TOKEN) && !log.contains(TOKEN),
            "a token in {name}'s log"
        );
    }
    assert_eq!(
        api.lease(NAMESPACE, LEASE).unwrap()["spec"]["holderIdentity"],
        ""
    );
    api.shutdown().await;
}

/// The leader cut off from the Kubernetes API (its requests fail, the other's do not) stops
/// polling on its own before the other takes the Lease over; from then on only the new leader's
/// request counter moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_api_stops_polling_and_the_other_takes_over() {
    let sim = common::setup::simulator(&pay_scenario(TOKEN)).await;
    // Any token is accepted; each process has its own, so one can be cut off alone.
    let api = LeaseApi::start(None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let addrs = [free_addr(), free_addr()];
    let mut children = Vec::new();
    for (index, name) in ["a", "b"].into_iter().enumerate() {
        let own = dir.path().join(name);
        std::fs::create_dir(&own).unwrap();
        let kubeconfig =
            write_kubeconfig(&own, &api.base_url(), &format!("token-{name}"), NAMESPACE);
        let config = write_config(dir.path(), name, &sim, addrs[index]);
        children.push(spawn_replica(dir.path(), name, &config, &kubeconfig));
    }
    let (seen_a, _) = wait_for("one leader that has polled", addrs, dir.path(), |a, b| {
        let (Some(a), Some(b)) = (a, b) else {
            return false;
        };
        a.leader != b.leader && a.successful_polls.max(b.successful_polls) >= 2
    })
    .await;
    let (leader, other) = if seen_a.unwrap().leader {
        (0, 1)
    } else {
        (1, 0)
    };
    let names = ["a", "b"];
    api.block_token(&format!("token-{}", names[leader]), true);

    let (seen_a, seen_b) = wait_for("the roles to swap", addrs, dir.path(), |a, b| {
        let (Some(a), Some(b)) = (a, b) else {
            return false;
        };
        let (old, new) = if leader == 0 { (a, b) } else { (b, a) };
        !old.leader && new.leader && new.successful_polls >= 1
    })
    .await;
    let old = if leader == 0 { seen_a } else { seen_b }.unwrap();
    let new = if leader == 0 { seen_b } else { seen_a }.unwrap();
    // Several more of the new leader's ticks: the old one's counter has not moved.
    wait_for(
        "three more ticks of the new leader",
        addrs,
        dir.path(),
        |a, b| {
            let now = if other == 0 { a } else { b };
            now.is_some_and(|now| now.successful_polls >= new.successful_polls + 3)
        },
    )
    .await;
    let old_now = seen(addrs[leader]).await.unwrap();
    assert!(!old_now.leader);
    assert_eq!(
        old_now.api_requests, old.api_requests,
        "the stepped-down leader sends no Cloudflare request"
    );
    let lease = api.lease(NAMESPACE, LEASE).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], names[other]);
    drop(children);
    api.shutdown().await;
}

/// `simulate-lease-api` serves the fake alone, for scripts: the bearer token checked, a Lease
/// created, and a stale write refused by `resourceVersion`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_lease_api_serves_the_fake_for_scripts() {
    let listen = free_addr();
    let child = std::process::Command::new(binary())
        .args([
            "simulate-lease-api",
            "--listen",
            &listen.to_string(),
            "--token",
            KUBE_TOKEN,
        ])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = ChildGuard::new(child);
    let http = reqwest::Client::new();
    let leases =
        format!("http://{listen}/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases");
    let lease_url = format!("{leases}/{LEASE}");
    let deadline = std::time::Instant::now() + DEADLINE;
    let unauthenticated = loop {
        if let Ok(response) = http.get(&lease_url).send().await {
            break response;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "simulate-lease-api did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(unauthenticated.status(), 401);
    let authed = |request: reqwest::RequestBuilder| request.bearer_auth(KUBE_TOKEN).send();
    assert_eq!(authed(http.get(&lease_url)).await.unwrap().status(), 404);
    // A write: the caller is checked before the body is parsed.
    let broken = || http.post(&leases).body("{");
    assert_eq!(broken().send().await.unwrap().status(), 401);
    assert_eq!(authed(broken()).await.unwrap().status(), 400);
    let lease = serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": LEASE},
        "spec": {"holderIdentity": "script"},
    });
    let created = authed(http.post(&leases).json(&lease)).await.unwrap();
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.unwrap();
    let mut renewed = created.clone();
    renewed["spec"]["holderIdentity"] = serde_json::json!("script-2");
    let put = |lease: &serde_json::Value| authed(http.put(&lease_url).json(lease));
    assert_eq!(put(&renewed).await.unwrap().status(), 200);
    // The same (now stale) resourceVersion again: a conflict, as the API server answers.
    assert_eq!(put(&created).await.unwrap().status(), 409);
    let stored: serde_json::Value = authed(http.get(&lease_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["spec"]["holderIdentity"], "script-2");
}
