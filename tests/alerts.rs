//! The daemon's own alerts end to end: simulator (in-process) → poll cycle → evaluation →
//! outbox → delivery to a local receiver (loopback axum server recording every request and
//! answering scripted statuses).

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudflare_aop_exporter::config::{Settings, SinkKind, SinkSettings, Sourced};
use cloudflare_aop_exporter::daemon::Exporter;
use cloudflare_aop_exporter::secret::Secret;
use cloudflare_aop_exporter::simulator::Simulator;
use cloudflare_aop_exporter::state::Status;
use common::metrics_text::{metric, render};
use common::process::{ChildGuard, binary, free_addr};
use common::receiver::{Receiver, Recorded, Reply};
use common::setup::{PAY_CERT as CERT, PAY_ZONE as ZONE, pay_scenario, sink, sink_toml};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use url::Url;

const HMAC_SECRET: &str = "hmac-key-7c1e9f34-do-not-log";
/// Short, so the repeat is testable; long enough that a slow machine's two back-to-back
/// cycles stay within it.
const REPEAT_INTERVAL: Duration = Duration::from_secs(2);
const TOKEN: &str = "alerts-test-token";

// ---------------------------------------------------------------------------------------------
// Set-up.

async fn simulator() -> Simulator {
    common::setup::simulator(&pay_scenario(TOKEN)).await
}

fn settings(sim: &Simulator, state_dir: &Path, sinks: Vec<SinkSettings>) -> Settings {
    let mut settings = common::setup::pay_settings(sim, state_dir, sinks);
    settings.alerts.repeat_interval = REPEAT_INTERVAL;
    settings
}

/// An exporter with alerts to `sinks` and a state directory of its own (kept while the guard
/// lives).
fn exporter_with(sim: &Simulator, sinks: Vec<SinkSettings>) -> (tempfile::TempDir, Exporter) {
    let state_dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::with_alerts(&settings(sim, state_dir.path(), sinks), true).unwrap();
    (state_dir, exporter)
}

fn time_out_the_certificate(sim: &Simulator) {
    assert!(sim.set_certificate_status(ZONE, CERT, Status::DeploymentTimedOut));
}

fn notifications(exporter: &Exporter, sink: &str, outcome: &str) -> u64 {
    metric(
        exporter,
        &format!(r#"cloudflare_aop_notifications_total{{outcome="{outcome}",sink="{sink}"}}"#),
    )
    .unwrap_or_else(|| panic!("no notifications_total series for {sink}/{outcome}"))
    .parse()
    .unwrap()
}

async fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    common::process::wait_until(what, Duration::from_secs(10), condition).await;
}

/// Lets a worker that wrongly had more to send send it, before counting.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

fn hmac_hex(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn closed_port_url(path: &str) -> Url {
    Url::parse(&format!("http://{}{path}", free_addr())).unwrap()
}

/// Slack: Block Kit blocks plus a text fallback naming what, where and how to fix it.
fn assert_slack_firing_message(request: &Recorded) {
    let message = request.json();
    let text = message["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "[FIRING] AOP deployment timed out: certificate {CERT} (pay.example)"
        )),
        "{text}"
    );
    assert!(text.contains("is deployment_timed_out since"), "{text}");
    assert!(
        text.contains(&format!(
            "POST \"https://api.cloudflare.com/client/v4/zones/{ZONE}/origin_tls_client_auth/hostnames/certificates\""
        )),
        "{text}"
    );
    let blocks = message["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert!(
        blocks
            .iter()
            .any(|block| block.to_string().contains("*Remediation*"))
    );
}

/// Webhook: Alertmanager v4 shape, signed over the exact body bytes. Returns the alert's
/// fingerprint and the document.
fn assert_signed_firing_webhook(request: &Recorded) -> (String, serde_json::Value) {
    let signature = request.headers["x-signature-256"].to_str().unwrap();
    assert_eq!(signature, format!("sha256={}", hmac_hex(&request.body)));
    let mut verifier = Hmac::<Sha256>::new_from_slice(HMAC_SECRET.as_bytes()).unwrap();
    verifier.update(&request.body);
    verifier
        .verify_slice(&hex::decode(signature.trim_start_matches("sha256=")).unwrap())
        .expect("the HMAC verifies");
    let document = request.json();
    assert_eq!(document["version"], "4");
    assert_eq!(document["status"], "firing");
    assert_eq!(document["receiver"], "ops-hook");
    let alert = &document["alerts"][0];
    assert_eq!(
        alert["labels"]["alertname"],
        "CloudflareAOPDeploymentTimedOut"
    );
    assert_eq!(alert["labels"]["reason"], "deployment_timed_out");
    assert_eq!(alert["labels"]["zone"], "pay.example");
    assert_eq!(alert["labels"]["zone_id"], ZONE);
    assert_eq!(alert["labels"]["cert_id"], CERT);
    assert_eq!(alert["annotations"]["status"], "deployment_timed_out");
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    let fingerprint = alert["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(fingerprint.len(), 16);
    (fingerprint, document)
}

/// Every sink sent `sent`, none failed or dropped, nothing is queued, nothing fires.
fn assert_all_sent_nothing_queued(exporter: &Exporter, sinks: &[&str], sent: u64) {
    for sink in sinks {
        assert_eq!(notifications(exporter, sink, "sent"), sent, "{sink}");
        assert_eq!(notifications(exporter, sink, "failed"), 0, "{sink}");
        assert_eq!(notifications(exporter, sink, "dropped"), 0, "{sink}");
        assert_eq!(
            metric(
                exporter,
                &format!(r#"cloudflare_aop_notification_queue_length{{sink="{sink}"}}"#)
            )
            .as_deref(),
            Some("0")
        );
    }
    assert_eq!(
        metric(
            exporter,
            r#"cloudflare_aop_alerts_firing{reason="deployment_timed_out"}"#
        )
        .as_deref(),
        Some("0")
    );
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[tokio::test]
async fn a_timeout_notifies_each_sink_once_repeats_after_the_interval_and_resolves_once() {
    let sim = simulator().await;
    let receiver = Receiver::start(Vec::new(), Reply::Ok).await;
    let state_dir = tempfile::tempdir().unwrap();
    let mut webhook = sink("ops-hook", SinkKind::Webhook, receiver.url("/hook"));
    webhook.hmac_secret = Some(Sourced::inline(Secret::new(HMAC_SECRET)));
    let settings = settings(
        &sim,
        state_dir.path(),
        vec![
            sink("chat", SinkKind::Slack, receiver.url("/slack")),
            webhook,
        ],
    );
    let exporter = Exporter::with_alerts(&settings, true).unwrap();

    // Pending for a moment is not an alert.
    exporter.cycle().await;
    settle().await;
    assert!(receiver.requests("/slack").is_empty());
    assert!(receiver.requests("/hook").is_empty());

    time_out_the_certificate(&sim);
    exporter.cycle().await;
    let slack = receiver.wait_for("/slack", 1).await;
    let hook = receiver.wait_for("/hook", 1).await;
    // A second cycle within repeat_interval: nothing new.
    exporter.cycle().await;
    settle().await;
    assert_eq!(receiver.requests("/slack").len(), 1);
    assert_eq!(receiver.requests("/hook").len(), 1);
    assert_eq!(
        metric(
            &exporter,
            r#"cloudflare_aop_alerts_firing{reason="deployment_timed_out"}"#
        )
        .as_deref(),
        Some("1")
    );

    assert_slack_firing_message(&slack[0]);
    let (fingerprint, document) = assert_signed_firing_webhook(&hook[0]);

    // After repeat_interval: exactly one more per sink.
    tokio::time::sleep(REPEAT_INTERVAL + Duration::from_millis(100)).await;
    exporter.cycle().await;
    let hook = receiver.wait_for("/hook", 2).await;
    let slack = receiver.wait_for("/slack", 2).await;
    assert_eq!(hook.len(), 2);
    assert_eq!(slack.len(), 2);
    let repeat = hook[1].json();
    assert_eq!(repeat["status"], "firing");
    assert_eq!(repeat["notification"], "repeat");
    assert_eq!(repeat["alerts"][0]["fingerprint"], fingerprint.as_str());
    assert_eq!(
        repeat["alerts"][0]["startsAt"], document["alerts"][0]["startsAt"],
        "a repeat is the same alert"
    );
    assert!(slack[1].slack_text().starts_with("[STILL FIRING]"));

    // The status clears: exactly one resolved message per sink, however many cycles follow.
    assert!(sim.set_certificate_status(ZONE, CERT, Status::Active));
    exporter.cycle().await;
    let hook = receiver.wait_for("/hook", 3).await;
    let slack = receiver.wait_for("/slack", 3).await;
    exporter.cycle().await;
    tokio::time::sleep(REPEAT_INTERVAL + Duration::from_millis(100)).await;
    exporter.cycle().await;
    settle().await;
    assert_eq!(receiver.requests("/hook").len(), 3);
    assert_eq!(receiver.requests("/slack").len(), 3);
    let resolved = hook[2].json();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["fingerprint"], fingerprint.as_str());
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    let resolved_text = slack[2].slack_text();
    assert!(resolved_text.starts_with("[RESOLVED] "), "{resolved_text}");
    assert!(
        resolved_text.contains("is no longer deployment_timed_out"),
        "{resolved_text}"
    );

    assert_all_sent_nothing_queued(&exporter, &["chat", "ops-hook"], 3);
    let rendered = render(&exporter);
    assert!(!rendered.contains("/slack") && !rendered.contains("/hook"));
    assert!(!rendered.contains(HMAC_SECRET));
    // The outbox names sinks, never their URLs or secrets.
    let persisted = std::fs::read_to_string(state_dir.path().join("alerts.json")).unwrap();
    assert!(!persisted.contains("127.0.0.1"), "{persisted}");
    assert!(!persisted.contains(HMAC_SECRET));
}

#[tokio::test]
async fn without_send_resolved_chat_sinks_hear_nothing_of_the_resolve() {
    let sim = simulator().await;
    let receiver = Receiver::start(Vec::new(), Reply::Ok).await;
    let state_dir = tempfile::tempdir().unwrap();
    let mut settings = settings(
        &sim,
        state_dir.path(),
        vec![sink("chat", SinkKind::Slack, receiver.url("/slack"))],
    );
    settings.alerts.send_resolved = false;
    let exporter = Exporter::with_alerts(&settings, true).unwrap();
    time_out_the_certificate(&sim);
    exporter.cycle().await;
    receiver.wait_for("/slack", 1).await;
    assert!(sim.set_certificate_status(ZONE, CERT, Status::Active));
    exporter.cycle().await;
    settle().await;
    assert_eq!(receiver.requests("/slack").len(), 1);
    assert!(
        exporter
            .alerter
            .as_ref()
            .unwrap()
            .firing()
            .firing
            .is_empty()
    );
}

#[tokio::test]
async fn a_receiver_failing_with_500_then_429_still_gets_exactly_one_delivery() {
    let sim = simulator().await;
    let receiver =
        Receiver::start(vec![Reply::Status(500), Reply::RateLimited(1)], Reply::Ok).await;
    let (_state_dir, exporter) = exporter_with(
        &sim,
        vec![sink("ops-hook", SinkKind::Webhook, receiver.url("/hook"))],
    );
    time_out_the_certificate(&sim);
    let started = Instant::now();
    exporter.cycle().await;
    let requests = receiver.wait_for("/hook", 3).await;
    let took = started.elapsed();
    settle().await;

    let answers: Vec<u16> = receiver
        .requests("/hook")
        .iter()
        .map(|request| request.answered)
        .collect();
    assert_eq!(answers, vec![500, 429, 200]);
    assert_eq!(receiver.delivered("/hook").len(), 1);
    assert!(
        took >= Duration::from_secs(1),
        "Retry-After: 1 was honoured ({took:?})"
    );
    assert_eq!(
        requests[0].body, requests[2].body,
        "a retry resends the same notification"
    );
    assert!(
        !requests[0].headers.contains_key("x-signature-256"),
        "no secret, no signature"
    );
    assert_eq!(notifications(&exporter, "ops-hook", "sent"), 1);
    assert_eq!(notifications(&exporter, "ops-hook", "failed"), 2);
    assert_eq!(notifications(&exporter, "ops-hook", "dropped"), 0);
    assert_eq!(exporter.alerter.as_ref().unwrap().queued("ops-hook"), 0);
}

#[tokio::test]
async fn a_400_is_not_retried_and_counts_as_failed() {
    let sim = simulator().await;
    let receiver = Receiver::start(Vec::new(), Reply::Status(400)).await;
    let (_state_dir, exporter) = exporter_with(
        &sim,
        vec![sink("chat", SinkKind::Slack, receiver.url("/slack"))],
    );
    time_out_the_certificate(&sim);
    exporter.cycle().await;
    receiver.wait_for("/slack", 1).await;
    // Longer than the first backoff delays: a retry would have happened by now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.requests("/slack").len(), 1);
    assert_eq!(notifications(&exporter, "chat", "failed"), 1);
    assert_eq!(notifications(&exporter, "chat", "dropped"), 1);
    assert_eq!(notifications(&exporter, "chat", "sent"), 0);
    assert_eq!(exporter.alerter.as_ref().unwrap().queued("chat"), 0);
    assert_eq!(
        metric(
            &exporter,
            r#"cloudflare_aop_notification_queue_length{sink="chat"}"#
        )
        .as_deref(),
        Some("0")
    );
}

#[tokio::test]
async fn a_notification_older_than_max_age_is_dropped_and_counted() {
    let sim = simulator().await;
    let mut unreachable = sink("chat", SinkKind::Slack, closed_port_url("/slack"));
    unreachable.max_age = Duration::from_millis(600);
    let (_state_dir, exporter) = exporter_with(&sim, vec![unreachable]);
    time_out_the_certificate(&sim);
    exporter.cycle().await;
    wait_until("the notification to be dropped", || {
        notifications(&exporter, "chat", "dropped") == 1
    })
    .await;
    assert!(notifications(&exporter, "chat", "failed") >= 1);
    assert_eq!(notifications(&exporter, "chat", "sent"), 0);
    assert_eq!(exporter.alerter.as_ref().unwrap().queued("chat"), 0);
    // Still firing: dropping a message does not forget the alert.
    assert_eq!(exporter.alerter.as_ref().unwrap().firing().firing.len(), 1);
}

#[tokio::test]
async fn a_restart_delivers_what_was_queued_and_does_not_announce_the_alert_again() {
    let sim = simulator().await;
    let state_dir = tempfile::tempdir().unwrap();

    // First run: the receiver is down (connection refused); the notification stays queued.
    let down = settings(
        &sim,
        state_dir.path(),
        vec![sink("chat", SinkKind::Slack, closed_port_url("/slack"))],
    );
    let first = Exporter::with_alerts(&down, true).unwrap();
    time_out_the_certificate(&sim);
    first.cycle().await;
    wait_until("a failed attempt", || {
        notifications(&first, "chat", "failed") >= 1
    })
    .await;
    let alerter = first.alerter.clone().unwrap();
    let started_at = alerter.firing().firing.values().next().unwrap().started_at;
    assert_eq!(alerter.queued("chat"), 1);
    alerter.shutdown().await;
    drop(alerter);
    drop(first);
    let persisted = std::fs::read_to_string(state_dir.path().join("alerts.json")).unwrap();
    assert!(persisted.contains("\"chat\""), "{persisted}");
    assert!(
        !persisted.contains("127.0.0.1"),
        "no sink URL in the state file: {persisted}"
    );

    // Second run, same state dir, the receiver is up (the sink keeps its name).
    let receiver = Receiver::start(Vec::new(), Reply::Ok).await;
    let mut up = settings(
        &sim,
        state_dir.path(),
        vec![sink("chat", SinkKind::Slack, receiver.url("/slack"))],
    );
    // Only a re-announcement could add a message, not a due repeat.
    up.alerts.repeat_interval = Duration::from_secs(3600);
    let second = Exporter::with_alerts(&up, true).unwrap();
    let carried = second.alerter.as_ref().unwrap().firing();
    assert_eq!(carried.firing.len(), 1, "the firing alert is remembered");
    assert_eq!(
        metric(
            &second,
            r#"cloudflare_aop_alerts_firing{reason="deployment_timed_out"}"#
        )
        .as_deref(),
        Some("1"),
        "visible before the first cycle"
    );
    let delivered = receiver.wait_for("/slack", 1).await;
    assert_eq!(delivered.len(), 1, "the queued notification is delivered");
    assert!(delivered[0].slack_text().starts_with("[FIRING]"));

    // Polls that still see the timeout do not announce it again.
    second.cycle().await;
    second.cycle().await;
    settle().await;
    assert_eq!(receiver.requests("/slack").len(), 1);
    let alert = second
        .alerter
        .as_ref()
        .unwrap()
        .firing()
        .firing
        .into_values()
        .next()
        .unwrap();
    assert_eq!(
        alert.started_at, started_at,
        "the same alert, not a new one"
    );
    assert_eq!(notifications(&second, "chat", "sent"), 1);
}

#[tokio::test]
async fn a_renamed_sink_keeps_its_queue_and_an_added_sink_hears_the_firing_alert_at_start() {
    let sim = simulator().await;
    let state_dir = tempfile::tempdir().unwrap();

    // First run: the Slack receiver is down; one firing notification stays queued for "chat".
    let slack_url = closed_port_url("/slack");
    let down = settings(
        &sim,
        state_dir.path(),
        vec![sink("chat", SinkKind::Slack, slack_url.clone())],
    );
    let first = Exporter::with_alerts(&down, true).unwrap();
    time_out_the_certificate(&sim);
    first.cycle().await;
    let alerter = first.alerter.clone().unwrap();
    assert_eq!(alerter.queued("chat"), 1);
    alerter.shutdown().await;
    drop(alerter);
    drop(first);

    // Second run: "chat" is renamed "oncall" (same type and URL, now answering), and a webhook
    // sink is added. No cycle runs: what arrives comes from the start-up alone.
    let slack = Receiver::start_on(
        std::net::SocketAddr::from(([127, 0, 0, 1], slack_url.port().unwrap())),
        Vec::new(),
        Reply::Ok,
    )
    .await;
    let hook = Receiver::start(Vec::new(), Reply::Ok).await;
    let mut up = settings(
        &sim,
        state_dir.path(),
        vec![
            sink("oncall", SinkKind::Slack, slack_url),
            sink("hook", SinkKind::Webhook, hook.url("/hook")),
        ],
    );
    up.alerts.repeat_interval = Duration::from_secs(3600);
    let second = Exporter::with_alerts(&up, true).unwrap();
    let carried = slack.wait_for("/slack", 1).await;
    assert_eq!(
        carried.len(),
        1,
        "the renamed sink's queued notification is delivered"
    );
    assert!(carried[0].slack_text().starts_with("[FIRING]"));
    let announced = hook.wait_for("/hook", 1).await;
    assert_eq!(
        announced.len(),
        1,
        "the new sink hears the alert already firing"
    );
    assert_eq!(announced[0].json()["status"], "firing");
    assert_eq!(
        announced[0].json()["alerts"][0]["labels"]["alertname"],
        "CloudflareAOPDeploymentTimedOut"
    );

    // Later cycles announce nothing again to either.
    second.cycle().await;
    settle().await;
    assert_eq!(slack.requests("/slack").len(), 1);
    assert_eq!(hook.requests("/hook").len(), 1);
    let persisted = std::fs::read_to_string(state_dir.path().join("alerts.json")).unwrap();
    assert!(persisted.contains("\"oncall\""), "{persisted}");
    assert!(!persisted.contains("\"chat\""), "{persisted}");
    assert!(!persisted.contains("127.0.0.1"), "{persisted}");
}

#[tokio::test]
async fn a_corrupt_alert_state_file_is_moved_aside_not_fatal() {
    let sim = simulator().await;
    let receiver = Receiver::start(Vec::new(), Reply::Ok).await;
    let state_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        state_dir.path().join("alerts.json"),
        b"{\"version\":1,\"fir",
    )
    .unwrap();
    let settings = settings(
        &sim,
        state_dir.path(),
        vec![sink("chat", SinkKind::Slack, receiver.url("/slack"))],
    );
    let exporter = Exporter::with_alerts(&settings, true).unwrap();
    time_out_the_certificate(&sim);
    exporter.cycle().await;
    assert_eq!(receiver.wait_for("/slack", 1).await.len(), 1);
    let names: Vec<String> = std::fs::read_dir(state_dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names
            .iter()
            .any(|name| name.starts_with("alerts.json.corrupt-")),
        "{names:?}"
    );
    assert!(names.contains(&"alerts.json".to_owned()), "{names:?}");
}

// ---------------------------------------------------------------------------------------------
// The binary: secrets never logged, the demo shows its alert.

// Distinctive secrets: none may appear in any log line.
const LOG_TOKEN: &str = "cftoken-8d1f4a2bSECRET";
const SLACK_PATH: &str = "/services/T00/B00/slackpathSECRET";
const HOOK_PASSWORD: &str = "userinfoSECRETpw";
const HOOK_PATH: &str = "/hook/webhookpathSECRET";
const DOWN_PATH: &str = "/down/downpathSECRET";
const HMAC_KEY: &str = "hmackeySECRET-0b9e";

/// A daemon config polling every second, with a Slack sink, a signed webhook with basic auth
/// in its URL, and a sink nobody listens on.
fn write_daemon_config(
    dir: &Path,
    base: &Url,
    slack: &Url,
    hook_url: &str,
    down: &Url,
) -> std::path::PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[cloudflare]
api_base_url = "{base}"
api_token = "{LOG_TOKEN}"
max_retries = 0

[schedule]
cron = "* * * * * *"
jitter = "0s"

[[zones]]
id = "{ZONE}"
name = "pay.example"
hostnames = ["missing.pay.example"]
zone_level = false

[server]
listen = "127.0.0.1:0"

[alerts]
repeat_interval = "1s"

{slack}
{hook}
{down}
[state]
dir = "{state}"
"#,
            slack = sink_toml("slack", &[("url", slack.as_str())]),
            hook = sink_toml("webhook", &[("url", hook_url), ("hmac_secret", HMAC_KEY)]),
            down = sink_toml(
                "webhook",
                &[("name", "down"), ("url", down.as_str()), ("timeout", "1s")]
            ),
            state = dir.join("state").display(),
        ),
    )
    .unwrap();
    config
}

#[tokio::test]
async fn no_secret_appears_in_trace_logs_through_alerts_and_failures() {
    let sim = common::setup::simulator(&pay_scenario(LOG_TOKEN)).await;
    time_out_the_certificate(&sim);
    // Slack fails first (5xx, then 429) and then accepts; the webhook rejects (400).
    let receiver =
        Receiver::start(vec![Reply::Status(503), Reply::RateLimited(1)], Reply::Ok).await;
    let rejecting = Receiver::start(Vec::new(), Reply::Status(400)).await;
    let hook_url = format!("http://aop:{HOOK_PASSWORD}@{}{HOOK_PATH}", rejecting.addr);
    let dir = tempfile::tempdir().unwrap();
    let config = write_daemon_config(
        dir.path(),
        &sim.base_url(),
        &receiver.url(SLACK_PATH),
        &hook_url,
        &closed_port_url(DOWN_PATH),
    );

    let child = std::process::Command::new(binary())
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "trace")
        .env_remove("CLOUDFLARE_API_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let guard = ChildGuard::new(child);
    // Long enough for: a poll, a firing alert, Slack's 503 → 429 (1 s) → 200, the 400, the
    // refused connections, and a repeat.
    let slack_answers: Vec<u16> = receiver
        .wait_for(SLACK_PATH, 3)
        .await
        .iter()
        .map(|request| request.answered)
        .take(3)
        .collect();
    assert_eq!(
        slack_answers,
        vec![503, 429, 200],
        "then repeats, each second"
    );
    rejecting.wait_for(HOOK_PATH, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = guard.terminate_and_collect();

    // It did go through every path we mean to check.
    for expected in [
        "alert firing",
        "notification delivery failed; will retry",
        "notification rejected by the sink",
        "notification sent",
        "refresh tick finished",
    ] {
        assert!(log.contains(expected), "the log lacks {expected:?}");
    }
    // The secrets were in play: the webhook was signed and sent basic auth from its URL.
    let hook_request = &rejecting.requests(HOOK_PATH)[0];
    assert!(hook_request.headers.contains_key("x-signature-256"));
    assert!(hook_request.headers.contains_key("authorization"));
    for secret in [
        LOG_TOKEN,
        "slackpathSECRET",
        HOOK_PASSWORD,
        "webhookpathSECRET",
        "downpathSECRET",
        HMAC_KEY,
    ] {
        if let Some(line) = log.lines().find(|line| line.contains(secret)) {
            panic!("secret {secret:?} in the log: {line}");
        }
    }
    let persisted = std::fs::read_to_string(dir.path().join("state/alerts.json")).unwrap();
    for secret in ["SECRET", HMAC_KEY] {
        assert!(!persisted.contains(secret), "{secret} in the state file");
    }
}

#[tokio::test]
async fn the_demo_logs_its_firing_alert_at_warn_without_any_sink() {
    let child = std::process::Command::new(binary())
        .args(["demo", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard::new(child);
    let stderr = guard.0.as_mut().unwrap().stderr.take().unwrap();
    // Read lines on a thread until the alert shows; killing the child ends a silent read.
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = tokio::task::spawn_blocking({
        let seen = seen.clone();
        move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { return false };
                let hit = line.contains("WARN")
                    && line.contains("deployment_timed_out")
                    && (line.contains("alert firing") || line.contains("alert still firing"));
                seen.lock().unwrap().push(line);
                if hit {
                    return true;
                }
            }
            false
        }
    });
    let found = tokio::time::timeout(Duration::from_secs(20), reader).await;
    drop(guard);
    assert!(
        matches!(found, Ok(Ok(true))),
        "no warn-level firing alert in the demo's log:\n{}",
        seen.lock().unwrap().join("\n")
    );
}
