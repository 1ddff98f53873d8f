//! Starting what a test drives: the simulator from a scenario, settings pointing at it (the
//! library's demo settings, adjusted), the exporter's router on a loopback port, and the
//! whole daemon (`daemon::run_on`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cloudflare_aop_exporter::config::{
    CloudflareSettings, SecretUrl, Settings, SinkKind, SinkSettings, Sourced, ZoneSettings,
};
use cloudflare_aop_exporter::daemon::{self, DaemonError, Exporter};
use cloudflare_aop_exporter::secret::Secret;
use cloudflare_aop_exporter::simulator::{Scenario, Simulator};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

/// A scenario from TOML; `pem_file`s resolve against the repository's `scenarios/`.
pub fn scenario(toml: &str) -> Scenario {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    Scenario::from_toml_str(toml, Some(&base)).expect("the test scenario parses")
}

/// The simulator serving a scenario given as TOML, on a free loopback port.
pub async fn simulator(toml: &str) -> Simulator {
    Simulator::start(scenario(toml))
        .await
        .expect("the simulator starts")
}

/// A `[[zones]]` entry: `name` is the `zone` label (empty: the id).
pub fn zone(id: &str, name: &str, hostnames: &[&str]) -> ZoneSettings {
    let mut zone = ZoneSettings::new(id, hostnames.iter().map(|h| (*h).to_owned()).collect());
    name.clone_into(&mut zone.name);
    zone
}

/// The settings builder: the library's demo settings for `zones`, against `sim` with its token.
pub fn settings(sim: &Simulator, zones: Vec<ZoneSettings>) -> Settings {
    Settings::for_demo(sim.base_url(), Secret::new(sim.token()), zones)
}

/// Retries that cost milliseconds, not seconds: `max_retries`, backoff from 5 ms to 20 ms.
pub fn fast_retries(settings: &mut Settings, max_retries: u32) {
    settings.cloudflare.max_retries = max_retries;
    settings.cloudflare.retry_initial_backoff = Duration::from_millis(5);
    settings.cloudflare.retry_max_backoff = Duration::from_millis(20);
}

/// For a forced 429: one request at a time (none is already on the wire when the 429 comes
/// back), a `block` for a 429 without a usable `Retry-After`, and no waiting for one.
pub fn one_at_a_time_with_block(cloudflare: &mut CloudflareSettings, block: Duration) {
    cloudflare.max_concurrency = 1;
    cloudflare.rate_limit_block = block;
    cloudflare.max_retry_after = Duration::from_millis(100);
}

/// A sink posting to `url`: 2 s per attempt, messages kept an hour.
pub fn sink(name: &str, kind: SinkKind, url: Url) -> SinkSettings {
    SinkSettings {
        name: name.to_owned(),
        kind,
        url: Sourced::inline(SecretUrl::new(url)),
        hmac_secret: None,
        timeout: Duration::from_secs(2),
        max_age: Duration::from_secs(3600),
    }
}

/// An `[[alerts.sinks]]` table for a config file: `type = "kind"`, then each `key = "value"`
/// as given (values quoted as TOML strings).
pub fn sink_toml(kind: &str, fields: &[(&str, &str)]) -> String {
    let mut table = format!("[[alerts.sinks]]\ntype = {}\n", toml_string(kind));
    for (key, value) in fields {
        let _ = writeln!(table, "{key} = {}", toml_string(value));
    }
    table
}

fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

/// GET `url`; the body as text, whatever the status.
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

/// The exporter's router served on a free loopback port.
pub async fn serve(exporter: &Exporter) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = exporter.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// The whole daemon (`daemon::run_on`) on a free loopback port; stopped by [`Daemon::stop`]
/// (or aborted when dropped, so a failing test still stops it).
pub struct Daemon {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<Result<(), DaemonError>>,
}

impl Daemon {
    pub async fn start(settings: Settings) -> Daemon {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(daemon::run_on(settings, listener, async {
            let _ = stopped.await;
        }));
        Daemon {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Waits (up to 5 s) until `/readyz` answers 200.
    pub async fn wait_ready(&self) -> bool {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(response) = http
                .get(format!("http://{}/readyz", self.addr))
                .send()
                .await
            {
                if response.status() == 200 {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Graceful shutdown: the daemon must end (within 40 s), and cleanly.
    pub async fn stop(mut self) -> Result<(), DaemonError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(40), &mut self.task)
            .await
            .expect("the daemon stops")
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// A one-zone scenario (TOML): the zone `(id, name)` with one active certificate `cert_id`
/// (`origin.<name>`, from a day ago to `not_after`, a time such as `100d`) serving `hostname`,
/// whose association is enabled and active. `auth` is the body of the `[auth]` table.
pub fn one_certificate_scenario(
    auth: &str,
    (zone_id, zone_name): (&str, &str),
    cert_id: &str,
    not_after: &str,
    hostname: &str,
) -> String {
    format!(
        r#"
[auth]
{auth}

[[zones]]
id = "{zone_id}"
name = "{zone_name}"

[[zones.certificates]]
id = "{cert_id}"
common_name = "origin.{zone_name}"
not_before = "-1d"
not_after = "{not_after}"
status = "active"

[[zones.hostnames]]
name = "{hostname}"
cert_id = "{cert_id}"
association = "enabled"
status = "active"
"#
    )
}

/// The sink tests' zone: `pay.example`, zone-level polling off, one certificate.
pub const PAY_ZONE: &str = "0fedcba9876543210fedcba987654321";
/// `pay.example`'s certificate, pending deployment until a test changes it.
pub const PAY_CERT: &str = "20000000-0000-4000-8000-000000000001";

/// The sink tests' scenario (`tests/scenarios/pay.toml`): [`PAY_ZONE`] with [`PAY_CERT`]
/// pending deployment, `token` its API token.
pub fn pay_scenario(token: &str) -> String {
    include_str!("../scenarios/pay.toml").replace("pay-test-token", token)
}

/// Settings watching [`PAY_ZONE`] (no token check), with `sinks` and a state directory.
pub fn pay_settings(
    sim: &Simulator,
    state_dir: &std::path::Path,
    sinks: Vec<SinkSettings>,
) -> Settings {
    let mut pay = zone(PAY_ZONE, "pay.example", &[]);
    pay.zone_level = false;
    let mut settings = settings(sim, vec![pay]);
    settings.cloudflare.verify_token = false;
    settings.state.dir = state_dir.to_path_buf();
    settings.alerts.sinks = sinks;
    settings
}
