//! Exporter processes under leader election against a fake Kubernetes API: the kubeconfig
//! file `KUBECONFIG` names, each replica's config file, the replica process, its scrape.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use cloudflare_aop_exporter::simulator::Simulator;
use url::Url;

use super::metrics_text::Scrape;
use super::process::{ChildGuard, binary};
use super::setup::PAY_ZONE;

/// Writes `dir/kubeconfig`: one cluster at `server` (plain HTTP on loopback), one user with the
/// bearer `token`, a current context in `namespace`.
pub fn write_kubeconfig(dir: &Path, server: &Url, token: &str, namespace: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
current-context: test
clusters:
- name: fake
  cluster:
    server: {server}
contexts:
- name: test
  context:
    cluster: fake
    user: exporter
    namespace: {namespace}
users:
- name: exporter
  user:
    token: {token}
"
        ),
    )
    .unwrap();
    path
}

/// Writes `dir/<name>.toml`: a replica polling the simulator's pay zone with `token` every
/// second on `listen`, its state in `dir/<name>-state`, under leader election on `lease` (5 s),
/// with `extra` TOML (e.g. alert sinks) before the `[leader_election]` table.
pub fn write_replica_config(
    dir: &Path,
    name: &str,
    sim: &Simulator,
    (token, lease): (&str, &str),
    listen: SocketAddr,
    extra: &str,
) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
[cloudflare]
api_base_url = "{base}"
api_token = "{token}"
verify_token = false

[schedule]
cron = "* * * * * *"
jitter = "0s"

[[zones]]
id = "{PAY_ZONE}"
name = "pay.example"
zone_level = false

[server]
listen = "{listen}"

[state]
dir = "{state}"
{extra}
[leader_election]
enabled = true
lease_name = "{lease}"
lease_duration = "5s"
"#,
            base = sim.base_url(),
            state = dir.join(format!("{name}-state")).display(),
        ),
    )
    .unwrap();
    path
}

/// One exporter process named `name` (its `POD_NAME`), its log in `dir/<name>.log`.
pub fn spawn_replica(dir: &Path, name: &str, config: &Path, kubeconfig: &Path) -> ChildGuard {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = std::process::Command::new(binary())
        .args(["run", "--config"])
        .arg(config)
        .env_clear()
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAME", name)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    ChildGuard::new(child)
}

/// `/metrics` of `addr`, or `None` while it does not answer (starting, killed).
pub async fn try_scrape(addr: SocketAddr) -> Option<Scrape> {
    let response = reqwest::get(format!("http://{addr}/metrics")).await.ok()?;
    Some(Scrape::parse(&response.text().await.ok()?))
}
