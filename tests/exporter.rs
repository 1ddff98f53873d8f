//! The exporter end to end: simulator (in-process) → poll cycle → `/metrics` over HTTP.

// One scenario, one scrape, the whole contract checked in one place: long on purpose.
#![allow(clippy::too_many_lines)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::Utc;
use cloudflare_aop_exporter::cloudflare::types::HostnameCertificate;
use cloudflare_aop_exporter::cloudflare::{Auth, Client, ClientOptions, Endpoint};
use cloudflare_aop_exporter::config::{Settings, ZoneSettings};
use cloudflare_aop_exporter::daemon::{self, Exporter};
use cloudflare_aop_exporter::secret::Secret;
use cloudflare_aop_exporter::simulator::{Fault, FaultRule, Scenario, Simulator, Timeline};
use cloudflare_aop_exporter::x509::CertificateFacts;
use common::metrics_text::{assert_promtool_accepts, scrape, series};
use common::process::{binary, free_addr};
use common::setup::{Daemon, fast_retries, get_text, serve, zone};

const SHOP: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const PAY: &str = "0fedcba9876543210fedcba987654321";
const C_GOOD: &str = "10000000-0000-4000-8000-000000000001";
const C_WEAK: &str = "10000000-0000-4000-8000-000000000002";
const C_SERVER_ONLY: &str = "10000000-0000-4000-8000-000000000003";
const C_MISMATCH: &str = "10000000-0000-4000-8000-000000000004";
const C_GARBAGE: &str = "10000000-0000-4000-8000-000000000005";
const C_UNLISTED: &str = "10000000-0000-4000-8000-000000000006";
const C_UNKNOWN: &str = "10000000-0000-4000-8000-000000000007";
const C_ZONE: &str = "10000000-0000-4000-8000-000000000008";
const C_PAY: &str = "20000000-0000-4000-8000-000000000001";

const SCENARIO: &str = include_str!("scenarios/exporter.toml");

fn scenario() -> Scenario {
    common::setup::scenario(SCENARIO)
}

fn zones() -> Vec<ZoneSettings> {
    let shop = zone(
        SHOP,
        "shop.example",
        &[
            "www.shop.example",
            "api.shop.example",
            "old.shop.example",
            "hidden.shop.example",
            "gone.shop.example",
        ],
    );
    let mut pay = zone(PAY, "pay.example", &["pay.example"]);
    pay.zone_level = false;
    vec![shop, pay]
}

fn settings(sim: &Simulator) -> Settings {
    let mut settings = common::setup::settings(sim, zones());
    fast_retries(&mut settings, 1);
    settings
}

/// An exporter over `sim` with the usual settings, after one cycle, served on a free port.
async fn cycled_and_served(sim: &Simulator) -> (Exporter, std::net::SocketAddr) {
    let exporter = Exporter::new(&settings(sim), false).unwrap();
    exporter.cycle().await;
    let addr = serve(&exporter).await;
    (exporter, addr)
}

/// `settings`, keeping state in a fresh directory (returned, so it outlives the exporter).
fn settings_with_state_dir(sim: &Simulator) -> (Settings, tempfile::TempDir) {
    let state_dir = tempfile::tempdir().unwrap();
    let mut settings = settings(sim);
    settings.state.dir = state_dir.path().to_path_buf();
    (settings, state_dir)
}

fn cert_labels(zone: &str, zone_name: &str, scope: &str, cert_id: &str) -> String {
    format!("zone_id=\"{zone}\",zone=\"{zone_name}\",scope=\"{scope}\",cert_id=\"{cert_id}\"")
}

fn shop_cert(cert_id: &str) -> String {
    cert_labels(SHOP, "shop.example", "hostname", cert_id)
}

fn shop_host(hostname: &str) -> String {
    format!("zone_id=\"{SHOP}\",zone=\"shop.example\",hostname=\"{hostname}\"")
}

/// A series key as `series` writes it: `cloudflare_aop_{family}{labels}`.
fn key(family: &str, labels: &str) -> String {
    format!("cloudflare_aop_{family}{{{labels}}}")
}

/// `key` with one more label after `labels`: `{label}="{state}"` (a state, a check, a source).
fn state_key(family: &str, labels: &str, label: &str, state: &str) -> String {
    key(family, &format!("{labels},{label}=\"{state}\""))
}

/// `cloudflare_aop_certificate_status{labels,status="{status}"}`.
fn status_key(labels: &str, status: &str) -> String {
    state_key("certificate_status", labels, "status", status)
}

fn value<'a>(all: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    all.get(key)
        .unwrap_or_else(|| panic!("missing series {key}"))
        .as_str()
}

fn api_client(sim: &Simulator) -> Client {
    Client::new(ClientOptions::new(
        sim.base_url(),
        Auth::Token(Secret::new(sim.token())),
    ))
    .unwrap()
}

/// Sets a certificate's status to a value the API does not document (yet).
fn serve_unknown_status(sim: &Simulator, zone_id: &str, cert_id: &str, status: &str) {
    sim.with_state(|state| {
        let zone = state.zone_mut(zone_id).unwrap();
        let position = zone.position();
        let certificate = zone
            .certificates
            .iter_mut()
            .find(|certificate| certificate.id == cert_id)
            .unwrap();
        certificate.timeline = Timeline::fixed(status, position, Utc::now());
    });
}

#[tokio::test]
async fn one_cycle_exports_the_exact_metrics_contract() {
    let sim = Simulator::start(scenario()).await.unwrap();
    serve_unknown_status(&sim, SHOP, C_UNKNOWN, "quarantined");
    let (_exporter, addr) = cycled_and_served(&sim).await;
    let text = scrape(addr).await;
    let all = series(&text);

    // Exactly the minimum requests: token verify; shop: list + 5 hostnames + 1 unlisted cert
    // + zone-level list + settings; pay: list + 1 hostname.
    let stats = sim.stats();
    assert_eq!(sim.requests(Endpoint::TokenVerify), 1);
    assert_eq!(sim.requests(Endpoint::HostnameCertificatesList), 2);
    assert_eq!(sim.requests(Endpoint::HostnameGet), 6);
    assert_eq!(sim.requests(Endpoint::HostnameCertificateGet), 1);
    assert_eq!(sim.requests(Endpoint::ZoneCertificatesList), 1);
    assert_eq!(sim.requests(Endpoint::ZoneSettingsGet), 1);
    assert_eq!(sim.requests(Endpoint::DnsRecordsList), 0);
    assert_eq!(stats.total, 12, "{:?}", stats.requests);

    // Every family of the README's "Metrics" table is present.
    for family in [
        "certificate_info",
        "certificate_expiry_timestamp_seconds",
        "certificate_not_before_timestamp_seconds",
        "certificate_uploaded_timestamp_seconds",
        "certificate_status",
        "certificate_status_since_timestamp_seconds",
        "certificate_hostnames",
        "certificate_check",
        "hostname_association",
        "hostname_enabled",
        "hostname_status",
        "hostname_certificate_status",
        "hostname_certificate_expiry_timestamp_seconds",
        "hostname_status_since_timestamp_seconds",
        "zone_enabled",
        "zone_certificates",
        "zone_poll_success",
        "zone_last_success_timestamp_seconds",
        "poll_duration_seconds",
        "polls_total",
        "api_requests_total",
        "api_request_duration_seconds",
        "api_errors_total",
        "rate_limit_remaining",
        "token_valid",
        "alerts_firing",
        "build_info",
    ] {
        assert!(
            text.contains(&format!("# TYPE cloudflare_aop_{family} ")),
            "family {family} missing"
        );
    }

    // StateSets are one-hot, including `unknown`.
    let status_series = |cert: &str, value: &str| status_key(&shop_cert(cert), value);
    for (cert, expected) in [
        (C_GOOD, "active"),
        (C_WEAK, "deployment_timed_out"),
        (C_SERVER_ONLY, "pending_deployment"),
        (C_UNLISTED, "active"),
        (C_UNKNOWN, "unknown"),
    ] {
        for candidate in common::API_STATUSES.into_iter().chain(["unknown"]) {
            let want = if candidate == expected { "1" } else { "0" };
            assert_eq!(
                value(&all, &status_series(cert, candidate)),
                want,
                "{cert} {candidate}"
            );
        }
    }

    // Expiry is the API's expires_on; not_before is the PEM's.
    let listed = api_client(&sim)
        .list_hostname_certificates(SHOP)
        .await
        .unwrap();
    let good: &HostnameCertificate = listed
        .iter()
        .find(|c| c.certificate_id() == Some(C_GOOD))
        .unwrap();
    let facts = CertificateFacts::from_pem(good.certificate.as_deref().unwrap()).unwrap();
    assert_eq!(
        value(
            &all,
            &key("certificate_expiry_timestamp_seconds", &shop_cert(C_GOOD))
        ),
        good.expires_on.unwrap().timestamp().to_string()
    );
    assert_eq!(
        value(
            &all,
            &key(
                "certificate_not_before_timestamp_seconds",
                &shop_cert(C_GOOD)
            )
        ),
        facts.not_before.timestamp().to_string()
    );
    let mismatch = listed
        .iter()
        .find(|c| c.certificate_id() == Some(C_MISMATCH))
        .unwrap();
    assert_eq!(
        value(
            &all,
            &key(
                "certificate_expiry_timestamp_seconds",
                &shop_cert(C_MISMATCH)
            )
        ),
        mismatch.expires_on.unwrap().timestamp().to_string(),
        "the API's expires_on wins over the PEM"
    );

    // Each failing check on the certificate built to fail it; passing ones pass.
    let check =
        |cert: &str, check: &str| state_key("certificate_check", &shop_cert(cert), "check", check);
    for (name, expected) in [
        ("pem_parses", "1"),
        ("client_auth_usage", "1"),
        ("key_strength", "1"),
        ("signature_algorithm", "1"),
        ("expiry_matches_api", "1"),
    ] {
        assert_eq!(value(&all, &check(C_GOOD, name)), expected, "good {name}");
    }
    assert_eq!(value(&all, &check(C_WEAK, "key_strength")), "0");
    assert_eq!(value(&all, &check(C_WEAK, "signature_algorithm")), "0");
    assert_eq!(value(&all, &check(C_WEAK, "client_auth_usage")), "1");
    assert_eq!(value(&all, &check(C_SERVER_ONLY, "client_auth_usage")), "0");
    assert_eq!(value(&all, &check(C_SERVER_ONLY, "key_strength")), "1");
    assert_eq!(value(&all, &check(C_MISMATCH, "expiry_matches_api")), "0");
    assert_eq!(value(&all, &check(C_GARBAGE, "pem_parses")), "0");
    assert!(
        !all.contains_key(&check(C_GARBAGE, "key_strength")),
        "an unparsed PEM has no other checks"
    );

    // Hostnames: enabled, disabled, voided, absent; the unlisted certificate was fetched.
    let association = |hostname: &str, state: &str| {
        state_key("hostname_association", &shop_host(hostname), "state", state)
    };
    for (hostname, expected) in [
        ("www.shop.example", "enabled"),
        ("api.shop.example", "disabled"),
        ("old.shop.example", "voided"),
        ("gone.shop.example", "absent"),
        ("hidden.shop.example", "enabled"),
    ] {
        for state in ["enabled", "disabled", "voided", "absent"] {
            let want = if state == expected { "1" } else { "0" };
            assert_eq!(
                value(&all, &association(hostname, state)),
                want,
                "{hostname} {state}"
            );
        }
        let enabled = if expected == "enabled" { "1" } else { "0" };
        assert_eq!(
            value(&all, &key("hostname_enabled", &shop_host(hostname))),
            enabled
        );
    }
    assert!(
        !all.keys()
            .any(|key| key.starts_with("cloudflare_aop_hostname_status{")
                && key.contains("gone.shop.example")),
        "an absent hostname has no status series"
    );
    assert_eq!(
        value(
            &all,
            &state_key(
                "hostname_status",
                &shop_host("old.shop.example"),
                "status",
                "deployment_timed_out"
            )
        ),
        "1"
    );
    assert_eq!(
        value(
            &all,
            &format!(
                "cloudflare_aop_hostname_certificate_status{{{},cert_id=\"{C_UNLISTED}\",status=\"active\"}}",
                shop_host("hidden.shop.example")
            )
        ),
        "1"
    );
    assert_eq!(
        value(
            &all,
            &format!(
                "cloudflare_aop_certificate_hostnames{{zone_id=\"{SHOP}\",zone=\"shop.example\",cert_id=\"{C_GOOD}\"}}"
            )
        ),
        "2",
        "www (enabled) and api (disabled) use it"
    );

    // Zone-level facts.
    assert_eq!(
        value(
            &all,
            &format!(
                "cloudflare_aop_zone_certificates{{zone_id=\"{SHOP}\",zone=\"shop.example\",scope=\"hostname\"}}"
            )
        ),
        "7"
    );
    assert_eq!(
        value(
            &all,
            &format!(
                "cloudflare_aop_zone_certificates{{zone_id=\"{SHOP}\",zone=\"shop.example\",scope=\"zone\"}}"
            )
        ),
        "1"
    );
    assert_eq!(
        value(
            &all,
            &status_key(&cert_labels(SHOP, "shop.example", "zone", C_ZONE), "active")
        ),
        "1"
    );
    assert_eq!(
        value(
            &all,
            &format!("cloudflare_aop_zone_enabled{{zone_id=\"{SHOP}\",zone=\"shop.example\"}}")
        ),
        "1"
    );
    assert!(
        !all.keys()
            .any(|key| key.starts_with("cloudflare_aop_zone_enabled{") && key.contains(PAY)),
        "zone-level polling is off for pay: no zone_enabled series"
    );
    for zone in [(SHOP, "shop.example"), (PAY, "pay.example")] {
        assert_eq!(
            value(
                &all,
                &format!(
                    "cloudflare_aop_zone_poll_success{{zone_id=\"{}\",zone=\"{}\"}}",
                    zone.0, zone.1
                )
            ),
            "1"
        );
    }
    assert_eq!(
        value(&all, r#"cloudflare_aop_token_valid{account="default"}"#),
        "1"
    );
    assert_eq!(
        value(&all, "cloudflare_aop_polls_total{outcome=\"success\"}"),
        "1"
    );
    assert_eq!(
        value(
            &all,
            "cloudflare_aop_api_requests_total{account=\"default\",code=\"404\",endpoint=\"hostname_get\"}"
        ),
        "1",
        "the absent hostname's 404"
    );
    assert_eq!(
        value(
            &all,
            "cloudflare_aop_api_errors_total{account=\"default\",endpoint=\"hostname_get\",reason=\"server_error\"}"
        ),
        "0"
    );
}

#[tokio::test]
async fn a_removed_certificate_disappears_after_the_next_cycle() {
    let sim = Simulator::start(scenario()).await.unwrap();
    let (exporter, addr) = cycled_and_served(&sim).await;
    let before = scrape(addr).await;
    assert!(before.contains(C_MISMATCH));

    assert!(sim.remove_certificate(SHOP, C_MISMATCH));
    exporter.cycle().await;
    let after = scrape(addr).await;
    assert!(!after.contains(C_MISMATCH), "vanished objects vanish");
    assert!(after.contains(C_GOOD));
}

#[tokio::test]
async fn a_failing_zone_keeps_its_series_while_other_zones_update() {
    let sim = Simulator::start(scenario()).await.unwrap();
    let (exporter, addr) = cycled_and_served(&sim).await;

    sim.add_fault(FaultRule::always(Fault::ServerError { status: 500 }).zone(PAY));
    assert!(sim.set_certificate_status(
        SHOP,
        C_SERVER_ONLY,
        cloudflare_aop_exporter::state::Status::Active
    ));
    exporter.cycle().await;
    let all = series(&scrape(addr).await);

    let pay_cert = cert_labels(PAY, "pay.example", "hostname", C_PAY);
    assert_eq!(
        value(&all, &status_key(&pay_cert, "active")),
        "1",
        "the failed zone's last good series stay"
    );
    assert_eq!(
        value(
            &all,
            &format!("cloudflare_aop_zone_poll_success{{zone_id=\"{PAY}\",zone=\"pay.example\"}}")
        ),
        "0"
    );
    assert_eq!(
        value(
            &all,
            &format!(
                "cloudflare_aop_zone_poll_success{{zone_id=\"{SHOP}\",zone=\"shop.example\"}}"
            )
        ),
        "1"
    );
    assert_eq!(
        value(&all, &status_key(&shop_cert(C_SERVER_ONLY), "active")),
        "1",
        "the healthy zone updated"
    );
    assert_eq!(
        value(&all, "cloudflare_aop_polls_total{outcome=\"partial\"}"),
        "1"
    );
    let server_errors: u64 = all
        .iter()
        .filter(|(key, _)| {
            key.starts_with("cloudflare_aop_api_errors_total{")
                && key.contains("reason=\"server_error\"")
        })
        .map(|(_, value)| value.parse::<u64>().unwrap())
        .sum();
    assert!(server_errors >= 1, "errors counted by reason");
}

#[tokio::test]
async fn metrics_pass_promtool_check_metrics() {
    let sim = Simulator::start(Scenario::demo()).await.unwrap();
    let settings = daemon::demo_settings(
        &Scenario::demo(),
        sim.base_url(),
        "127.0.0.1:0".parse().unwrap(),
    );
    let exporter = Exporter::new(&settings, false).unwrap();
    exporter.cycle().await;
    let addr = serve(&exporter).await;
    assert_promtool_accepts(&scrape(addr).await);
}

#[tokio::test]
async fn the_daemon_serves_ready_health_status_page_and_snapshot() {
    let sim = Simulator::start(scenario()).await.unwrap();
    let (mut settings, state_dir) = settings_with_state_dir(&sim);
    settings.schedule.cron = "0 0 0 1 1 *".into();
    let daemon = Daemon::start(settings).await;
    let addr = daemon.addr;
    assert!(daemon.wait_ready().await, "/readyz never became 200");
    let http = reqwest::Client::new();
    let health = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let page = get_text(&http, &format!("http://{addr}/")).await;
    assert!(
        page.contains("www.shop.example"),
        "status page lists hostnames"
    );
    assert!(page.contains(C_WEAK) && page.contains("deployment_timed_out"));

    let snapshot = get_text(&http, &format!("http://{addr}/api/v1/snapshot")).await;
    let json: serde_json::Value = serde_json::from_str(&snapshot).unwrap();
    assert_eq!(
        json["zones"][SHOP]["hostnames"]["gone.shop.example"]["association"],
        "absent"
    );
    assert!(
        !snapshot.contains("BEGIN CERTIFICATE"),
        "no PEM bodies in the snapshot"
    );
    assert!(
        !snapshot.contains("exporter-test-token"),
        "no secrets in the snapshot"
    );

    daemon.stop().await.unwrap();
    // The status history was persisted on the way.
    let history = std::fs::read_to_string(state_dir.path().join("status-history.json")).unwrap();
    assert!(history.contains(C_WEAK));
}

#[tokio::test]
async fn status_since_survives_a_restart() {
    let sim = Simulator::start(scenario()).await.unwrap();
    let (settings, _state_dir) = settings_with_state_dir(&sim);
    let since_of = |exporter: &Exporter| {
        exporter.snapshot.load().zones[SHOP].certificates[&(
            cloudflare_aop_exporter::state::Scope::Hostname,
            C_WEAK.to_owned(),
        )]
            .status_since
            .unwrap()
    };
    let first = Exporter::new(&settings, true).unwrap();
    first.cycle().await;
    let since = since_of(&first);
    drop(first);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = Exporter::new(&settings, true).unwrap();
    second.cycle().await;
    assert_eq!(
        since_of(&second),
        since,
        "since when comes from the persisted history"
    );
}

/// Runs `check` with a config pointing at `base_url`; returns (exit code, stdout).
async fn run_check(base_url: &str, token: &str, zones_toml: &str, extra: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[cloudflare]\napi_base_url = \"{base_url}\"\napi_token = \"{token}\"\nmax_retries = 0\nrequest_timeout = \"2s\"\n\n[state]\ndir = \"{}\"\n\n{zones_toml}",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut command = tokio::process::Command::new(binary());
    command
        .arg("check")
        .arg("--config")
        .arg(&config)
        .args(extra)
        .env_remove("CLOUDFLARE_API_TOKEN")
        .env_remove("RUST_LOG");
    let output = command.output().await.unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test]
async fn check_exit_codes_healthy_findings_unreachable() {
    let sim = Simulator::start(scenario()).await.unwrap();
    let base = sim.base_url().to_string();
    let healthy = format!(
        "[[zones]]\nid = \"{PAY}\"\nname = \"pay.example\"\nhostnames = [\"pay.example\"]\nzone_level = false\n"
    );
    let (code, out) = run_check(&base, &sim.token(), &healthy, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No findings."), "{out}");
    // The zone's 32-character id has a column of its own, aligned under its header.
    let header = out.lines().find(|line| line.starts_with("ZONE ")).unwrap();
    let row = out.lines().find(|line| line.contains(PAY)).unwrap();
    assert_eq!(header.find("POLL"), row.find("ok"), "{out}");

    let findings = format!(
        "[[zones]]\nid = \"{SHOP}\"\nname = \"shop.example\"\nhostnames = [\"www.shop.example\", \"old.shop.example\"]\n"
    );
    let (code, out) = run_check(&base, &sim.token(), &findings, &["--format", "json"]).await;
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["status"], "findings");
    let kinds: BTreeSet<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| finding["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(kinds.contains("deployment_timed_out"), "{kinds:?}");
    assert!(kinds.contains("association_voided"), "{kinds:?}");
    assert!(kinds.contains("check_failed"), "{kinds:?}");
    assert!(!out.contains("exporter-test-token"));

    let closed = free_addr();
    let (code, out) = run_check(&format!("http://{closed}/client/v4"), "t", &healthy, &[]).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("Cloudflare API unreachable"), "{out}");

    // Cloudflare answers 200, but with a body that cannot be read: still exit 3, but said so.
    sim.add_fault(FaultRule::always(Fault::MalformedJson).on(Endpoint::HostnameCertificatesList));
    let (code, out) = run_check(&base, &sim.token(), &healthy, &["--format", "json"]).await;
    assert_eq!(code, 3, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["status"], "undecodable", "{out}");
    assert_eq!(report["zones"][0]["error_reason"], "decode", "{out}");
    let (code, out) = run_check(&base, &sim.token(), &healthy, &[]).await;
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("Cloudflare answered, but some answers could not be decoded"),
        "{out}"
    );
}

#[tokio::test]
async fn a_cycle_requested_while_one_runs_is_skipped_and_counted() {
    let sim = Simulator::start(scenario()).await.unwrap();
    sim.set_latency(Duration::from_millis(300));
    let exporter = std::sync::Arc::new(Exporter::new(&settings(&sim), false).unwrap());
    let running = tokio::spawn({
        let exporter = exporter.clone();
        async move { exporter.cycle().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(exporter.is_running());
    exporter.cycle().await;
    running.await.unwrap();
    let addr = serve(&exporter).await;
    let all = series(&scrape(addr).await);
    assert_eq!(
        value(&all, "cloudflare_aop_polls_total{outcome=\"skipped\"}"),
        "1"
    );
    assert_eq!(
        value(&all, "cloudflare_aop_polls_total{outcome=\"success\"}"),
        "1"
    );
    assert_eq!(
        sim.requests(Endpoint::HostnameCertificatesList),
        2,
        "one cycle ran"
    );
}

#[tokio::test]
async fn discovery_adds_proxied_dns_names() {
    let sim = Simulator::start(scenario()).await.unwrap();
    let mut settings = settings(&sim);
    let mut pay = ZoneSettings::new(PAY, Vec::new());
    pay.zone_level = false;
    pay.discover_hostnames = true;
    settings.zones = vec![pay];
    settings.cloudflare.verify_token = false;
    let exporter = Exporter::new(&settings, false).unwrap();
    exporter.cycle().await;
    let snapshot = exporter.snapshot.load();
    let hostnames: Vec<&String> = snapshot.zones[PAY].hostnames.keys().collect();
    assert_eq!(hostnames, vec!["pay.example"]);
    assert_eq!(sim.requests(Endpoint::DnsRecordsList), 1);
    assert_eq!(sim.requests(Endpoint::HostnameGet), 1);
    assert_eq!(sim.stats().total, 3, "dns + list + one hostname");
}

const REAL_ACCOUNT_SCENARIO: &str = include_str!("scenarios/real-account.toml");
const BLOG: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";
const BLOG_ACCOUNT: &str = "5d6e7f8091a2b3c4d5e6f708192a3b4c";
/// The blog zone's hostnames with an account to discover from: (hostname, source, association).
const BLOG_HOSTNAMES: [(&str, &str, &str); 3] = [
    ("news.blog.example", "discovered", "absent"),
    ("shop.blog.example", "configured", "absent"),
    ("www.blog.example", "configured", "enabled"),
];

/// A real account's first hour: an account-owned token, hostname discovery, no zone-level polls.
async fn real_account(account_id: Option<&str>) -> (Simulator, Exporter, Settings) {
    let sim = common::setup::simulator(REAL_ACCOUNT_SCENARIO).await;
    let mut blog = zone(
        BLOG,
        "blog.example",
        &["www.blog.example", "shop.blog.example"],
    );
    blog.zone_level = false;
    blog.discover_hostnames = true;
    let mut settings = common::setup::settings(&sim, vec![blog]);
    settings.cloudflare.account_id = account_id.map(str::to_owned);
    let exporter = Exporter::new(&settings, false).unwrap();
    exporter.cycle().await;
    (sim, exporter, settings)
}

#[tokio::test]
async fn an_account_token_without_account_id_exports_no_token_valid_and_polls_fine() {
    let (_sim, exporter, _settings) = real_account(None).await;
    let all = series(&scrape(serve(&exporter).await).await);
    assert!(
        !all.keys()
            .any(|key| key.starts_with("cloudflare_aop_token_valid")),
        "unverifiable: no series, never 0"
    );
    assert_eq!(
        value(
            &all,
            &format!(
                "cloudflare_aop_zone_poll_success{{zone_id=\"{BLOG}\",zone=\"blog.example\"}}"
            )
        ),
        "1"
    );
}

#[tokio::test]
async fn an_account_token_with_account_id_verifies_as_valid() {
    let (sim, exporter, _settings) = real_account(Some(BLOG_ACCOUNT)).await;
    let all = series(&scrape(serve(&exporter).await).await);
    assert_eq!(
        value(&all, r#"cloudflare_aop_token_valid{account="default"}"#),
        "1"
    );
    assert_eq!(sim.requests(Endpoint::TokenVerify), 2, "user, then account");
}

#[tokio::test]
async fn discovered_hostnames_without_an_association_raise_nothing() {
    let (_sim, exporter, settings) = real_account(Some(BLOG_ACCOUNT)).await;
    let snapshot = exporter.snapshot.load();
    let sources: Vec<(&str, &str, &str)> = snapshot.zones[BLOG]
        .hostnames
        .values()
        .map(|hostname| {
            (
                hostname.hostname.as_str(),
                hostname.source.as_str(),
                hostname.association.as_str(),
            )
        })
        .collect();
    assert_eq!(sources, BLOG_HOSTNAMES);
    let all = series(&scrape(serve(&exporter).await).await);
    let labels = |hostname: &str| {
        format!("zone_id=\"{BLOG}\",zone=\"blog.example\",hostname=\"{hostname}\"")
    };
    assert_eq!(
        value(
            &all,
            &state_key(
                "hostname_info",
                &labels("news.blog.example"),
                "source",
                "discovered"
            )
        ),
        "1"
    );
    assert_eq!(
        value(
            &all,
            &state_key(
                "hostname_info",
                &labels("shop.blog.example"),
                "source",
                "configured"
            )
        ),
        "1"
    );
    // zone_level = false: the zone-level count is unknown, so it has no series.
    assert!(
        all.keys()
            .all(|key| !(key.starts_with("cloudflare_aop_zone_certificates{")
                && key.contains("scope=\"zone\""))),
        "{all:?}"
    );
    // `check`: the configured hostname without an association is a finding, the discovered
    // one is not.
    let report = cloudflare_aop_exporter::check::report(
        &snapshot,
        Utc::now(),
        Duration::from_secs(14 * 86_400),
        settings.alerts.pending_timeout,
    );
    let objects: Vec<&str> = report
        .findings
        .iter()
        .map(|finding| finding.object.as_str())
        .collect();
    assert_eq!(objects, vec!["hostname shop.blog.example"]);
    // The inventory: every certificate and hostname, with where each hostname came from.
    let json = serde_json::to_value(&report).unwrap();
    let certificate = &json["certificates"][0];
    assert_eq!(certificate["id"], "30000000-0000-4000-8000-000000000001");
    assert_eq!(certificate["scope"], "hostname");
    assert_eq!(certificate["status"], "active");
    assert_eq!(
        certificate["hostnames"],
        serde_json::json!(["www.blog.example"])
    );
    assert_eq!(certificate["checks"]["pem_parses"], true);
    assert!(
        certificate["days_left"].as_i64().unwrap() >= 98,
        "{certificate}"
    );
    let hostnames: Vec<(&str, &str, &str)> = json["hostnames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["hostname"].as_str().unwrap(),
                row["source"].as_str().unwrap(),
                row["association"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(hostnames, BLOG_HOSTNAMES);
    assert_eq!(
        json["hostnames"][2]["cert_id"],
        "30000000-0000-4000-8000-000000000001"
    );
    let table = cloudflare_aop_exporter::check::render_table(&report);
    let header = table
        .lines()
        .find(|line| line.starts_with("ZONE") && line.contains("HOSTNAME "))
        .unwrap();
    let row = table
        .lines()
        .find(|line| line.contains("news.blog.example"))
        .unwrap();
    // Aligned: the SOURCE column starts at the same offset in the header and the row.
    assert_eq!(header.find("SOURCE"), row.find("discovered"), "\n{table}");
}
