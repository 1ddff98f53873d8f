//! docs/architecture.md, Bars: "Secrets never appear in logs (at any level), metrics, JSON output or error
//! messages", audited end to end with the real binary.
//!
//! Every command (`validate-config`, `check` as table and JSON, `run`, `demo`, `simulate`,
//! `healthcheck`, and any command added later, run with `--help`) runs at `RUST_LOG=trace` with
//! distinctive secrets in its environment and config: an API token, a legacy API key, a webhook
//! URL with a secret path and query, a Slack URL with a secret path, an HMAC secret, and a
//! basic-auth password in `healthcheck --url`. The daemon goes through API errors (auth failure, 5xx, token verification failing) and alerts to
//! a webhook and a Slack sink that fail (500) and then accept. Then nothing the binary wrote —
//! stdout, stderr, `/metrics`, `/api/v1/snapshot`, `/api/v1/replication`, the status page `/`, every file in the state
//! directories — may contain any of the secrets, or even the marker they all share.
//!
//! A control proves the audit looks at the output: `simulate`, served a scenario with the
//! audited token, logs it (by design), and the audit must find it there.
//!
//! Debugging: `AUDIT_LIST=1` lists every artifact audited with its size; `AUDIT_DUMP=DIR` (with
//! it) also writes each one to DIR.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cloudflare_aop_exporter::simulator::{Fault, FaultRule, Scenario, Simulator};
use cloudflare_aop_exporter::state::Status;
use common::metrics_text::Scrape;
use common::process::{binary, free_addr as free_port};
use common::receiver::{Receiver, Reply};
use common::setup::get_text;

/// In every secret below: a leak of any fragment around it is caught too.
const MARKER: &str = "xK9sEcReTq";
const TOKEN: &str = "cfut_tok3n_xK9sEcReTq_A1b2C3d4E5";
const EMAIL: &str = "audit@example.com";
const KEY: &str = "legacyk3y_xK9sEcReTq_0f9e8d7c6b";
const HOOK_PATH: &str = "hookpath_xK9sEcReTq_77aa";
const HOOK_QUERY: &str = "hookquery_xK9sEcReTq_51bd";
const SLACK_PATH: &str = "slackpath_xK9sEcReTq_9c0d";
const HMAC_SECRET: &str = "hmac_xK9sEcReTq_e4f1a2b3";
/// A basic-auth password in `healthcheck --url` (for a `/healthz` behind `basic_auth_users`).
const PROBE_PASSWORD: &str = "probepw_xK9sEcReTq_3e3e";
const SECRETS: [(&str, &str); 8] = [
    ("API token", TOKEN),
    ("legacy API key", KEY),
    ("webhook URL path", HOOK_PATH),
    ("webhook URL query", HOOK_QUERY),
    ("Slack URL path", SLACK_PATH),
    ("HMAC secret", HMAC_SECRET),
    ("healthcheck URL password", PROBE_PASSWORD),
    ("shared marker", MARKER),
];

const ZONE: &str = "5ec2e700000000000000000000000001";
const CERT: &str = "50000000-0000-4000-8000-000000000001";

fn scenario_toml() -> String {
    common::setup::one_certificate_scenario(
        &format!("token = \"{TOKEN}\"\nemail = \"{EMAIL}\"\nkey = \"{KEY}\""),
        (ZONE, "audit.example"),
        CERT,
        "100d",
        "www.audit.example",
    )
}

fn scenario() -> Scenario {
    common::setup::scenario(&scenario_toml())
}

// ---------------------------------------------------------------------------------------------
// What the binary produced, and the audit over it.

#[derive(Default)]
struct Artifacts {
    items: Vec<(String, Vec<u8>)>,
}

impl Artifacts {
    fn add(&mut self, label: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.items.push((label.into(), bytes.into()));
    }

    /// The last artifact, as text.
    fn last_text(&self) -> String {
        self.items
            .last()
            .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_default()
    }

    /// Every file under `dir`, recursively.
    fn add_dir(&mut self, label: &str, dir: &Path) {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).unwrap() {
                    stack.push(entry.unwrap().path());
                }
            } else if let Ok(bytes) = std::fs::read(&path) {
                let name = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                self.add(format!("{label}/{name}"), bytes);
            }
        }
    }

    /// Every (artifact, secret) where the secret occurs, with some context.
    fn leaks(&self) -> Vec<String> {
        let mut leaks = Vec::new();
        for (label, bytes) in &self.items {
            for (what, secret) in SECRETS {
                let secret = secret.as_bytes();
                if let Some(at) = bytes
                    .windows(secret.len())
                    .position(|window| window == secret)
                {
                    let context =
                        &bytes[at.saturating_sub(120)..(at + secret.len() + 120).min(bytes.len())];
                    leaks.push(format!(
                        "{what} in {label}: …{}…",
                        String::from_utf8_lossy(context)
                    ));
                }
            }
        }
        leaks
    }
}

// ---------------------------------------------------------------------------------------------
// Running the binary.

/// The environment every command gets: trace logging and every secret, so a command that
/// dumped its environment or settings would be caught.
fn audit_env(command: &mut tokio::process::Command, slack_url: &str) {
    command
        .env("RUST_LOG", "trace")
        .env("AUDIT_CF_TOKEN", TOKEN)
        .env("CLOUDFLARE_API_TOKEN", TOKEN)
        .env("CLOUDFLARE_API_KEY", KEY)
        .env("AUDIT_HMAC", HMAC_SECRET)
        .env("AUDIT_SLACK_URL", slack_url)
        .env_remove("CF_AOP_CONFIG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
}

/// A child process with its stdout and stderr going to files (trace logs can be large).
struct Proc {
    label: String,
    child: tokio::process::Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Proc {
    fn spawn(label: &str, args: &[&str], slack_url: &str, logs: &Path) -> Proc {
        let stdout = logs.join(format!("{label}.stdout"));
        let stderr = logs.join(format!("{label}.stderr"));
        let mut command = tokio::process::Command::new(binary());
        command
            .args(args)
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        audit_env(&mut command, slack_url);
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("{label}: cannot start: {error}"));
        Proc {
            label: label.to_owned(),
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for the exit (at most 60 s); records stdout and stderr; returns the exit code.
    async fn finish(mut self, artifacts: &mut Artifacts) -> Option<i32> {
        let label = self.label.clone();
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{label}: did not exit"))
            .unwrap();
        artifacts.add(
            format!("{label} stdout"),
            std::fs::read(&self.stdout).unwrap(),
        );
        artifacts.add(
            format!("{label} stderr"),
            std::fs::read(&self.stderr).unwrap(),
        );
        status.code()
    }

    /// SIGTERM (the graceful path), then [`Proc::finish`].
    async fn terminate(self, artifacts: &mut Artifacts) -> Option<i32> {
        if let Some(pid) = self.child.id() {
            let sent = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap();
            assert!(sent.success(), "{}: kill -TERM failed", self.label);
        }
        self.finish(artifacts).await
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// Runs a command to completion; returns its exit code.
async fn run(
    label: &str,
    args: &[&str],
    slack_url: &str,
    logs: &Path,
    artifacts: &mut Artifacts,
) -> Option<i32> {
    Proc::spawn(label, args, slack_url, logs)
        .finish(artifacts)
        .await
}

/// GETs `path` from `addr`, records the body, returns the status.
async fn fetch(
    http: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    label: &str,
    artifacts: &mut Artifacts,
) -> u16 {
    let response = http
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap_or_else(|error| panic!("{label}: GET {path}: {error}"));
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    artifacts.add(format!("{label} GET {path}"), body.to_vec());
    status
}

/// Polls `addr{path}` until it answers 200 (at most 60 s), failing with the process's stderr.
async fn wait_200(http: &reqwest::Client, addr: SocketAddr, path: &str, proc: &Proc) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = http.get(format!("http://{addr}{path}")).send().await {
            if response.status() == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{}: {path} never answered 200; stderr tail: {}",
            proc.label,
            tail(&proc.stderr_text())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Waits for `condition` (at most 30 s).
async fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    common::process::wait_until(what, Duration::from_secs(30), condition).await;
}

/// Waits until `/metrics` has a series line containing every one of `parts` with a value > 0.
async fn wait_for_series(http: &reqwest::Client, addr: SocketAddr, parts: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = get_text(http, &format!("http://{addr}/metrics")).await;
        let found = Scrape::parse(&text).samples.iter().any(|sample| {
            parts.iter().all(|part| sample.series.contains(part)) && sample.value > 0.0
        });
        if found {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no series with {parts:?} > 0 in /metrics"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The receiver of both sinks (500 while failing, then 204).

/// Requests whose path contains `path_part` that the receiver answered `status`.
fn count(receiver: &Receiver, path_part: &str, status: u16) -> usize {
    receiver
        .all()
        .iter()
        .filter(|request| request.path.contains(path_part) && request.answered == status)
        .count()
}

// ---------------------------------------------------------------------------------------------
// Configs.

struct Configs {
    /// The daemon: token from the environment, webhook URL from a file, HMAC secret from the
    /// environment, Slack URL from the environment.
    daemon: PathBuf,
    daemon_state: PathBuf,
    daemon_listen: SocketAddr,
    /// Legacy email + key, inline.
    legacy: PathBuf,
    /// Every secret inline (for `validate-config`).
    inline: PathBuf,
    /// The token, inline, against a closed port (`check` exit 3).
    unreachable: PathBuf,
    /// The token, inline, in an `[[accounts]]` table.
    accounts: PathBuf,
    /// Every state directory the commands use.
    state_dirs: Vec<PathBuf>,
}

fn write_configs(dir: &Path, api: &str, webhook_url: &str, slack_url: &str) -> Configs {
    let daemon_state = dir.join("state-daemon");
    let daemon_listen = free_port();
    let hook_file = dir.join("webhook-url");
    std::fs::write(&hook_file, format!("{webhook_url}\n")).unwrap();
    let zone = format!(
        "[[zones]]\nid = \"{ZONE}\"\nname = \"audit.example\"\nhostnames = [\"www.audit.example\"]\n"
    );
    let fast = "request_timeout = \"1s\"\nmax_retries = 1\nretry_initial_backoff = \"10ms\"\n\
                retry_max_backoff = \"50ms\"\nrequests_per_5m = 100000\n";
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let daemon = write(
        "daemon.toml",
        format!(
            r#"[cloudflare]
api_base_url = "{api}"
api_token_env = "AUDIT_CF_TOKEN"
token_verify_interval = "1s"
{fast}
[schedule]
cron = "*/1 * * * * *"
jitter = "0s"

[server]
listen = "{daemon_listen}"

[alerts]
repeat_interval = "1h"

[[alerts.sinks]]
type = "webhook"
name = "audit-hook"
url_file = "{}"
hmac_secret_env = "AUDIT_HMAC"
timeout = "2s"

[[alerts.sinks]]
type = "slack"
name = "audit-slack"
url_env = "AUDIT_SLACK_URL"
timeout = "2s"

[state]
dir = "{}"

{zone}"#,
            hook_file.display(),
            daemon_state.display()
        ),
    );
    let legacy = write(
        "legacy.toml",
        format!(
            "[cloudflare]\napi_base_url = \"{api}\"\napi_email = \"{EMAIL}\"\napi_key = \"{KEY}\"\n{fast}\n[state]\ndir = \"{}\"\n\n{zone}",
            dir.join("state-legacy").display()
        ),
    );
    let inline = write(
        "inline.toml",
        format!(
            r#"[cloudflare]
api_base_url = "{api}"
api_token = "{TOKEN}"

{}
{}
[state]
dir = "{}"

{zone}"#,
            common::setup::sink_toml(
                "webhook",
                &[("url", webhook_url), ("hmac_secret", HMAC_SECRET)]
            ),
            common::setup::sink_toml("slack", &[("url", slack_url)]),
            dir.join("state-inline").display()
        ),
    );
    let unreachable = write(
        "unreachable.toml",
        format!(
            "[cloudflare]\napi_base_url = \"http://{}/client/v4\"\napi_token = \"{TOKEN}\"\n{fast}\n[state]\ndir = \"{}\"\n\n{zone}",
            free_port(),
            dir.join("state-unreachable").display()
        ),
    );
    let accounts = write("accounts.toml", accounts_toml(dir, api, fast, &zone));
    Configs {
        daemon,
        daemon_listen,
        legacy,
        inline,
        unreachable,
        accounts,
        state_dirs: ["daemon", "legacy", "inline", "unreachable", "accounts"]
            .map(|name| dir.join(format!("state-{name}")))
            .to_vec(),
        daemon_state,
    }
}

/// The token inline in an `[[accounts]]` table with the audit zone (`zone` as `[[zones]]`).
fn accounts_toml(dir: &Path, api: &str, fast: &str, zone: &str) -> String {
    format!(
        "[cloudflare]\napi_base_url = \"{api}\"\n{fast}\n[state]\ndir = \"{}\"\n\n\
         [[accounts]]\nname = \"audit\"\napi_token = \"{TOKEN}\"\n\n{}",
        dir.join("state-accounts").display(),
        zone.replace("[[zones]]", "[[accounts.zones]]")
    )
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The audit.

/// One `check` run: its config, output and log formats, the fault on the API, the exit code.
struct CheckCase<'a> {
    label: &'static str,
    config: &'a Path,
    format: &'static str,
    log_format: &'static str,
    fault: Option<Fault>,
    exit: i32,
}

/// `validate-config` on every config: the effective config, secrets redacted.
async fn validate_configs(
    configs: &Configs,
    slack_url: &str,
    logs: &Path,
    artifacts: &mut Artifacts,
) {
    for (label, config) in [
        ("validate-config daemon", &configs.daemon),
        ("validate-config legacy", &configs.legacy),
        ("validate-config inline", &configs.inline),
        ("validate-config accounts", &configs.accounts),
    ] {
        let code = run(
            label,
            &["validate-config", arg(config)],
            slack_url,
            logs,
            artifacts,
        )
        .await;
        assert_eq!(code, Some(0), "{label}");
    }
}

/// The one-shot commands: `validate-config` on every config, `check` healthy / through an auth
/// failure / through 5xx / unreachable, as table and JSON, text and JSON logs.
async fn one_shot_commands(
    sim: &Simulator,
    configs: &Configs,
    slack_url: &str,
    logs: &Path,
    artifacts: &mut Artifacts,
) {
    validate_configs(configs, slack_url, logs, artifacts).await;
    let check = |config: &Path, format: &'static str, log_format: &'static str| {
        vec![
            "--log-format".to_owned(),
            log_format.to_owned(),
            "check".to_owned(),
            "--config".to_owned(),
            arg(config).to_owned(),
            "--format".to_owned(),
            format.to_owned(),
        ]
    };
    let case = |label, config, format, log_format, fault, exit| CheckCase {
        label,
        config,
        format,
        log_format,
        fault,
        exit,
    };
    let cases = [
        case(
            "check token table",
            &configs.daemon,
            "table",
            "text",
            None,
            0,
        ),
        case("check token json", &configs.daemon, "json", "json", None, 0),
        case(
            "check legacy table",
            &configs.legacy,
            "table",
            "text",
            None,
            0,
        ),
        case(
            "check legacy json auth-failure",
            &configs.legacy,
            "json",
            "text",
            Some(Fault::AuthFailure),
            3,
        ),
        case(
            "check token table auth-failure",
            &configs.daemon,
            "table",
            "json",
            Some(Fault::AuthFailure),
            3,
        ),
        case(
            "check token json 5xx",
            &configs.daemon,
            "json",
            "text",
            Some(Fault::ServerError { status: 502 }),
            3,
        ),
        case(
            "check accounts json auth-failure",
            &configs.accounts,
            "json",
            "json",
            Some(Fault::AuthFailure),
            3,
        ),
        case(
            "check unreachable table",
            &configs.unreachable,
            "table",
            "text",
            None,
            3,
        ),
    ];
    for CheckCase {
        label,
        config,
        format,
        log_format,
        fault,
        exit: expected,
    } in cases
    {
        sim.clear_faults();
        if let Some(fault) = fault {
            sim.add_fault(FaultRule::always(fault));
        }
        let args = check(config, format, log_format);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let code = run(label, &args, slack_url, logs, artifacts).await;
        assert_eq!(code, Some(expected), "{label}: exit code");
    }
    sim.clear_faults();
}

/// `run`: healthy, alerts to failing sinks, auth failures and 5xx (also on token
/// verification), sinks back, delivery; the HTTP surface scraped in every phase.
async fn the_daemon(
    sim: &Simulator,
    receiver: &Receiver,
    configs: &Configs,
    slack_url: &str,
    logs: &Path,
    artifacts: &mut Artifacts,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let addr = configs.daemon_listen;
    let daemon = Proc::spawn(
        "run",
        &["run", "--config", arg(&configs.daemon)],
        slack_url,
        logs,
    );
    wait_200(&http, addr, "/readyz", &daemon).await;
    let surface = |phase: &'static str| {
        [
            ("/metrics", phase),
            ("/api/v1/snapshot", phase),
            ("/api/v1/replication", phase),
            ("/", phase),
            ("/healthz", phase),
            ("/readyz", phase),
        ]
    };
    for (path, phase) in surface("healthy") {
        assert_eq!(
            fetch(&http, addr, path, &format!("run {phase}"), artifacts).await,
            200
        );
    }

    // Alerts fire; both sinks fail.
    assert!(sim.set_certificate_status(ZONE, CERT, Status::DeploymentTimedOut));
    wait_until("failed deliveries to both sinks", || {
        count(receiver, HOOK_PATH, 500) >= 2 && count(receiver, SLACK_PATH, 500) >= 2
    })
    .await;
    wait_for_series(&http, addr, &["notifications_total", "outcome=\"failed\""]).await;
    // The outbox holds the undelivered notifications now.
    artifacts.add_dir("state dir while queued", &configs.daemon_state);
    replication_while_queued(&http, addr, artifacts).await;

    // API errors: auth failure (also on token verification), then 5xx.
    for (fault, reason) in [
        (Fault::AuthFailure, "forbidden"),
        (Fault::ServerError { status: 503 }, "server_error"),
    ] {
        sim.clear_faults();
        sim.add_fault(FaultRule::always(fault));
        wait_for_series(
            &http,
            addr,
            &["api_errors_total", &format!("reason=\"{reason}\"")],
        )
        .await;
        for (path, phase) in surface("api-errors") {
            fetch(
                &http,
                addr,
                path,
                &format!("run {phase} {reason}"),
                artifacts,
            )
            .await;
        }
    }
    wait_for_series(
        &http,
        addr,
        &["api_errors_total", "endpoint=\"token_verify\""],
    )
    .await;

    // Everything back: the API, and both sinks, which get the queued notifications.
    sim.clear_faults();
    receiver.answer(Reply::Status(204));
    wait_until("deliveries to both sinks", || {
        count(receiver, HOOK_PATH, 204) >= 1 && count(receiver, SLACK_PATH, 204) >= 1
    })
    .await;
    assert!(
        receiver
            .all()
            .iter()
            .any(|request| request.path.contains(HOOK_PATH)
                && request.answered == 204
                && request.headers.contains_key("x-signature-256")),
        "the webhook deliveries are signed"
    );
    wait_for_series(&http, addr, &["notifications_total", "outcome=\"sent\""]).await;
    for (path, phase) in surface("delivered") {
        assert_eq!(
            fetch(&http, addr, path, &format!("run {phase}"), artifacts).await,
            200
        );
    }

    healthchecks(addr, slack_url, logs, artifacts).await;

    let stderr = daemon.stderr_text();
    assert!(
        stderr.matches("TRACE").count() >= 10,
        "{} TRACE lines; RUST_LOG=trace took effect: {}",
        stderr.matches("TRACE").count(),
        tail(&stderr)
    );
    let code = daemon.terminate(artifacts).await;
    assert_eq!(code, Some(0), "run exits 0 on SIGTERM");
}

/// What a standby replicates: the queued notifications too, by sink name only.
async fn replication_while_queued(
    http: &reqwest::Client,
    addr: SocketAddr,
    artifacts: &mut Artifacts,
) {
    assert_eq!(
        fetch(http, addr, "/api/v1/replication", "run queued", artifacts).await,
        200
    );
    let queued = artifacts.last_text();
    assert!(
        queued.contains("\"queues\"") && queued.contains("\"audit-hook\""),
        "the replication body holds the queued notifications: {}",
        tail(&queued)
    );
}

/// `healthcheck` against the daemon, and against a closed port.
async fn healthchecks(addr: SocketAddr, slack_url: &str, logs: &Path, artifacts: &mut Artifacts) {
    // Credentials in the URL too, answered 404 as a wrong password would be answered 401.
    let with_credentials =
        |host: String, path: &str| format!("http://probe:{PROBE_PASSWORD}@{host}{path}");
    for (label, url, exit, what) in [
        (
            "healthcheck ok",
            format!("http://{addr}/healthz"),
            0,
            "healthcheck against the daemon",
        ),
        (
            "healthcheck closed",
            format!("http://{}/healthz", free_port()),
            1,
            "healthcheck against a closed port",
        ),
        (
            "healthcheck creds ok",
            with_credentials(addr.to_string(), "/healthz"),
            0,
            "healthcheck creds ok",
        ),
        (
            "healthcheck creds 404",
            with_credentials(addr.to_string(), "/nope"),
            1,
            "healthcheck creds 404",
        ),
        (
            "healthcheck creds closed",
            with_credentials(free_port().to_string(), "/healthz"),
            1,
            "healthcheck with credentials against a closed port",
        ),
    ] {
        let code = run(
            label,
            &["healthcheck", "--url", &url],
            slack_url,
            logs,
            artifacts,
        )
        .await;
        assert_eq!(code, Some(exit), "{what}");
    }
}

/// `label`: `command --listen <a free port>` and `extra`, once `ready` answers 200 there.
async fn serving(
    label: &str,
    command: &str,
    extra: &[&str],
    ready: &str,
    http: &reqwest::Client,
    slack_url: &str,
    logs: &Path,
) -> (Proc, SocketAddr) {
    let listen = free_port();
    let listen_arg = listen.to_string();
    let mut args = vec![command, "--listen", &listen_arg];
    args.extend_from_slice(extra);
    let proc = Proc::spawn(label, &args, slack_url, logs);
    wait_200(http, listen, ready, &proc).await;
    (proc, listen)
}

/// `demo` and `simulate`, briefly, each scraped; the simulator also gets requests carrying the
/// secrets (a real token pointed at it by mistake must not end up in its logs either).
async fn demo_and_simulate(slack_url: &str, logs: &Path, artifacts: &mut Artifacts) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (demo, listen) = serving("demo", "demo", &[], "/readyz", &http, slack_url, logs).await;
    for path in ["/metrics", "/api/v1/snapshot", "/"] {
        assert_eq!(fetch(&http, listen, path, "demo", artifacts).await, 200);
    }
    assert_eq!(demo.terminate(artifacts).await, Some(0), "demo exit code");

    let (simulate, listen) = serving(
        "simulate",
        "simulate",
        &[],
        "/__sim/stats",
        &http,
        slack_url,
        logs,
    )
    .await;
    let zones = get_text(&http, &format!("http://{listen}/__sim/zones")).await;
    artifacts.add("simulate GET /__sim/zones", zones.clone());
    let zone_id = serde_json::from_str::<serde_json::Value>(&zones).unwrap()["zones"][0]["id"]
        .as_str()
        .map(str::to_owned)
        .expect("the demo scenario has a zone");
    let list = format!(
        "http://{listen}/client/v4/zones/{zone_id}/origin_tls_client_auth/hostnames/certificates"
    );
    let answers = [
        http.get(&list).bearer_auth(TOKEN).send().await.unwrap(),
        http.get(&list)
            .header("X-Auth-Email", EMAIL)
            .header("X-Auth-Key", KEY)
            .send()
            .await
            .unwrap(),
        http.get(format!("{list}?{HOOK_QUERY}=1"))
            .header("Authorization", format!("Bearer {HMAC_SECRET}"))
            .send()
            .await
            .unwrap(),
    ];
    for answer in answers {
        assert_eq!(answer.status(), 403, "wrong credentials are refused");
        artifacts.add(
            "simulate API answer",
            answer.bytes().await.unwrap().to_vec(),
        );
    }
    assert_eq!(
        simulate.terminate(artifacts).await,
        Some(0),
        "simulate exit code"
    );

    // The control: `simulate` logs the token its scenario accepts (by design, so a user can
    // point the exporter at it). Served the audit scenario, that is our token: the audit must
    // see it, or it is not looking at the output at all.
    let scenario_file = logs.join("audit-scenario.toml");
    std::fs::write(&scenario_file, scenario_toml()).unwrap();
    let (control, _) = serving(
        "simulate control",
        "simulate",
        &["--scenario", arg(&scenario_file)],
        "/__sim/stats",
        &http,
        slack_url,
        logs,
    )
    .await;
    let mut seen = Artifacts::default();
    control.terminate(&mut seen).await;
    assert!(
        seen.leaks()
            .iter()
            .any(|leak| leak.starts_with("API token in simulate control")),
        "the audit's own control: the simulator's start-up line names the scenario's token"
    );
}

/// Any command the binary lists that this audit does not know: run with `--help`, so at least
/// its presence is noticed (the audit should then be extended).
async fn unknown_commands(slack_url: &str, logs: &Path, artifacts: &mut Artifacts) -> Vec<String> {
    let help = std::process::Command::new(binary())
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout).into_owned();
    let known: BTreeSet<&str> = [
        "run",
        "demo",
        "check",
        "simulate",
        "healthcheck",
        "validate-config",
        "help",
    ]
    .into();
    let commands: Vec<String> = text
        .split("Commands:")
        .nth(1)
        .unwrap_or_default()
        .split("Options:")
        .next()
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| !known.contains(name))
        .map(str::to_owned)
        .collect();
    for command in &commands {
        run(
            &format!("{command} --help"),
            &[command, "--help"],
            slack_url,
            logs,
            artifacts,
        )
        .await;
    }
    commands
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_any_output_metric_page_or_state_file() {
    let work = tempfile::tempdir().unwrap();
    let logs = work.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let sim = Simulator::start(scenario()).await.unwrap();
    let receiver = Receiver::start(Vec::new(), Reply::Status(500)).await;
    let receiver_addr = receiver.addr;
    let webhook_url = format!("http://{receiver_addr}/hooks/{HOOK_PATH}?token={HOOK_QUERY}");
    let slack_url = format!("http://{receiver_addr}/services/T0AUDIT/B0AUDIT/{SLACK_PATH}");
    let configs = write_configs(
        work.path(),
        sim.base_url().as_str(),
        &webhook_url,
        &slack_url,
    );
    let mut artifacts = Artifacts::default();

    one_shot_commands(&sim, &configs, &slack_url, &logs, &mut artifacts).await;
    the_daemon(&sim, &receiver, &configs, &slack_url, &logs, &mut artifacts).await;
    demo_and_simulate(&slack_url, &logs, &mut artifacts).await;
    let unknown = unknown_commands(&slack_url, &logs, &mut artifacts).await;
    sim.shutdown().await;

    for dir in &configs.state_dirs {
        artifacts.add_dir(&format!("state dir {}", dir.display()), dir);
    }
    // The audit saw what it should: the daemon's state (outboxes, history) and its trace logs.
    assert!(
        artifacts
            .items
            .iter()
            .any(|(label, _)| label.contains("state-daemon") && label.contains("history")),
        "the daemon's state files were audited: {:?}",
        artifacts
            .items
            .iter()
            .map(|(label, _)| label)
            .collect::<Vec<_>>()
    );
    assert!(configs.daemon_state.is_dir());
    let leaks = artifacts.leaks();
    if std::env::var_os("AUDIT_LIST").is_some() {
        for (label, bytes) in &artifacts.items {
            eprintln!("{:>10} {label}", bytes.len());
            if let Some(dir) = std::env::var_os("AUDIT_DUMP") {
                let name: String = label
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                std::fs::write(Path::new(&dir).join(name), bytes).unwrap();
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets leaked ({} of {} artifacts audited):\n{}",
        leaks.len(),
        artifacts.items.len(),
        leaks.join("\n")
    );
    assert!(
        unknown.is_empty(),
        "commands the secrets audit does not exercise yet (only --help was run): {unknown:?}"
    );
}
