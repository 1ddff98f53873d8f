//! The `alertmanager` sink against a real Alertmanager (Debian package
//! `prometheus-alertmanager`), started on loopback with clustering off and a route to a local
//! webhook receiver: the exporter's firing alert arrives there via `/api/v2/alerts`, and so
//! does its resolve.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use cloudflare_aop_exporter::config::SinkKind;
use cloudflare_aop_exporter::daemon::Exporter;
use cloudflare_aop_exporter::state::Status;
use common::process::{ChildGuard, free_addr, os_tool};
use common::receiver::{Receiver, Reply};
use common::setup::{PAY_CERT as CERT, PAY_ZONE as ZONE, pay_scenario, pay_settings, sink};
use url::Url;

const HOOK: &str = "/alertmanager-hook";

/// The webhook documents Alertmanager sent.
fn received(receiver: &Receiver) -> Vec<serde_json::Value> {
    receiver
        .requests(HOOK)
        .iter()
        .map(common::receiver::Recorded::json)
        .collect()
}

fn start_alertmanager(binary: &Path, dir: &Path, receiver: SocketAddr, port: u16) -> ChildGuard {
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            r"route:
  receiver: hook
  group_by: ['alertname', 'zone_id', 'cert_id']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs:
      - url: http://{receiver}{HOOK}
        send_resolved: true
"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
    let child = std::process::Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    ChildGuard::new(child)
}

async fn wait_ready(port: u16, dir: &Path) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(response) = http
            .get(format!("http://127.0.0.1:{port}/-/ready"))
            .send()
            .await
        {
            if response.status() == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager never became ready: {}",
            std::fs::read_to_string(dir.join("alertmanager.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to 20 s) for a webhook document with `status`; returns it.
async fn wait_for_status(receiver: &Receiver, status: &str, dir: &Path) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(document) = received(receiver)
            .into_iter()
            .find(|document| document["status"] == status)
        {
            return document;
        }
        assert!(
            Instant::now() < deadline,
            "no {status} notification from Alertmanager; got {:?}; log: {}",
            received(receiver),
            std::fs::read_to_string(dir.join("alertmanager.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_real_alertmanager_routes_the_firing_alert_and_its_resolve() {
    // Debian names the binary `prometheus-alertmanager`; upstream tarballs `alertmanager`.
    let Some(alertmanager) = os_tool(
        &["alertmanager", "prometheus-alertmanager"],
        "alertmanager not installed (scripts/test installs prometheus-alertmanager)",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(Vec::new(), Reply::Ok).await;
    let port = free_addr().port();
    let _alertmanager = start_alertmanager(&alertmanager, dir.path(), receiver.addr, port);
    wait_ready(port, dir.path()).await;

    let sim = common::setup::simulator(&pay_scenario("alertmanager-test-token")).await;
    let mut alertmanager_sink = sink(
        "alertmanager",
        SinkKind::Alertmanager,
        Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
    );
    alertmanager_sink.timeout = Duration::from_secs(5);
    let settings = pay_settings(&sim, &dir.path().join("state"), vec![alertmanager_sink]);
    let exporter = Exporter::with_alerts(&settings, true).unwrap();

    assert!(sim.set_certificate_status(ZONE, CERT, Status::DeploymentTimedOut));
    exporter.cycle().await;
    let firing = wait_for_status(&receiver, "firing", dir.path()).await;
    let alerts = firing["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{firing}");
    let alert = &alerts[0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(
        alert["labels"]["alertname"],
        "CloudflareAOPDeploymentTimedOut"
    );
    assert_eq!(alert["labels"]["reason"], "deployment_timed_out");
    assert_eq!(alert["labels"]["zone_id"], ZONE);
    assert_eq!(alert["labels"]["cert_id"], CERT);
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["annotations"]["status"], "deployment_timed_out");
    assert!(
        alert["annotations"]["remediation_api_call"]
            .as_str()
            .unwrap()
            .contains("/origin_tls_client_auth/hostnames/certificates")
    );

    // Re-posting every cycle keeps it one alert in Alertmanager, not a new one per post.
    exporter.cycle().await;
    exporter.cycle().await;
    let listed: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/api/v2/alerts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    assert!(sim.set_certificate_status(ZONE, CERT, Status::Active));
    exporter.cycle().await;
    let resolved = wait_for_status(&receiver, "resolved", dir.path()).await;
    let alert = &resolved["alerts"][0];
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["labels"]["cert_id"], CERT);
    assert_ne!(alert["endsAt"], "0001-01-01T00:00:00Z");
    let firing_notifications = received(&receiver)
        .iter()
        .filter(|document| document["status"] == "firing")
        .count();
    assert_eq!(
        firing_notifications, 1,
        "Alertmanager deduplicated the re-posts"
    );
}
