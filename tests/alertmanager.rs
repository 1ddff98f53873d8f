//! The `alertmanager` sink against a real Alertmanager (Debian package
//! `prometheus-alertmanager`), started on loopback with clustering off and a route to a local
//! webhook receiver: the exporter's firing alert arrives there via `/api/v2/alerts`, and so
//! does its resolve.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use cloudflare_aop_exporter::config::{
    SecretUrl, Settings, SinkKind, SinkSettings, Sourced, ZoneSettings,
};
use cloudflare_aop_exporter::daemon::Exporter;
use cloudflare_aop_exporter::secret::Secret;
use cloudflare_aop_exporter::simulator::{Scenario, Simulator};
use cloudflare_aop_exporter::state::Status;
use url::Url;

const ZONE: &str = "0fedcba9876543210fedcba987654321";
const CERT: &str = "20000000-0000-4000-8000-000000000001";

const SCENARIO: &str = r#"
[auth]
token = "alertmanager-test-token"

[[zones]]
id = "0fedcba9876543210fedcba987654321"
name = "pay.example"
zone_level_enabled = false

[[zones.certificates]]
id = "20000000-0000-4000-8000-000000000001"
common_name = "origin.pay.example"
not_before = "-1d"
not_after = "100d"
status = "pending_deployment"
"#;

fn find_tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

/// Kills Alertmanager on drop, whatever the test's outcome.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The webhook documents Alertmanager sent.
type Received = Arc<Mutex<Vec<serde_json::Value>>>;

async fn start_receiver() -> (SocketAddr, Received) {
    async fn record(State(received): State<Received>, Json(body): Json<serde_json::Value>) {
        received.lock().unwrap().push(body);
    }
    let received = Received::default();
    let router = axum::Router::new()
        .route("/alertmanager-hook", axum::routing::post(record))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (addr, received)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
      - url: http://{receiver}/alertmanager-hook
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
    ChildGuard(child)
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
async fn wait_for_status(received: &Received, status: &str, dir: &Path) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(document) = received
            .lock()
            .unwrap()
            .iter()
            .find(|document| document["status"] == status)
        {
            return document.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {status} notification from Alertmanager; got {:?}; log: {}",
            received.lock().unwrap(),
            std::fs::read_to_string(dir.join("alertmanager.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_real_alertmanager_routes_the_firing_alert_and_its_resolve() {
    // Debian names the binary `prometheus-alertmanager`; upstream tarballs `alertmanager`.
    let Some(alertmanager) =
        find_tool("alertmanager").or_else(|| find_tool("prometheus-alertmanager"))
    else {
        assert!(
            std::env::var_os("CF_AOP_REQUIRE_OS_TOOLS").is_none(),
            "alertmanager is required under scripts/test"
        );
        eprintln!(
            "SKIPPED: alertmanager not installed (scripts/test installs prometheus-alertmanager)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (hook_addr, received) = start_receiver().await;
    let port = free_port();
    let _alertmanager = start_alertmanager(&alertmanager, dir.path(), hook_addr, port);
    wait_ready(port, dir.path()).await;

    let sim = Simulator::start(Scenario::from_toml_str(SCENARIO, None).unwrap())
        .await
        .unwrap();
    let mut zone = ZoneSettings::new(ZONE, Vec::new());
    zone.name = "pay.example".into();
    zone.zone_level = false;
    let mut settings = Settings::for_demo(sim.base_url(), Secret::new(sim.token()), vec![zone]);
    settings.cloudflare.verify_token = false;
    settings.state.dir = dir.path().join("state");
    settings.alerts.sinks = vec![SinkSettings {
        name: "alertmanager".into(),
        kind: SinkKind::Alertmanager,
        url: Sourced::inline(SecretUrl::new(
            Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        )),
        hmac_secret: None,
        timeout: Duration::from_secs(5),
        max_age: Duration::from_secs(3600),
    }];
    let exporter = Exporter::with_alerts(&settings, true).unwrap();

    assert!(sim.set_certificate_status(ZONE, CERT, Status::DeploymentTimedOut));
    exporter.cycle().await;
    let firing = wait_for_status(&received, "firing", dir.path()).await;
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
    let resolved = wait_for_status(&received, "resolved", dir.path()).await;
    let alert = &resolved["alerts"][0];
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["labels"]["cert_id"], CERT);
    assert_ne!(alert["endsAt"], "0001-01-01T00:00:00Z");
    let firing_notifications = received
        .lock()
        .unwrap()
        .iter()
        .filter(|document| document["status"] == "firing")
        .count();
    assert_eq!(
        firing_notifications, 1,
        "Alertmanager deduplicated the re-posts"
    );
}
