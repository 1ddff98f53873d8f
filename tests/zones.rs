//! Which zones are watched, against the simulator: zones given by name, `[zone_discovery]`
//! with an exclude, a configured entry overriding a discovered zone, zones that disappear.

mod common;

use std::time::Duration;

use cloudflare_aop_exporter::cloudflare::Endpoint;
use cloudflare_aop_exporter::config::{Settings, ZoneDiscoverySettings, ZoneSettings};
use cloudflare_aop_exporter::daemon::Exporter;
use cloudflare_aop_exporter::secret::Secret;
use cloudflare_aop_exporter::simulator::{Scenario, Simulator};
use common::metrics_text::{Scrape, render};
use common::setup::{Daemon, get_text, zone};

fn settings(sim: &Simulator, zones: Vec<ZoneSettings>) -> Settings {
    let mut settings = common::setup::settings(sim, zones);
    settings.cloudflare.verify_token = false;
    settings.cloudflare.max_retries = 0;
    settings.cloudflare.requests_per_5m = 100_000;
    settings
}

/// A `[[zones]]` entry given by name only.
fn by_name(name: &str, hostnames: &[&str]) -> ZoneSettings {
    let mut zone = zone("", name, hostnames);
    zone.zone_level = false;
    zone
}

fn discovery(exclude: &[&str]) -> ZoneDiscoverySettings {
    ZoneDiscoverySettings {
        enabled: true,
        exclude: exclude.iter().map(|name| (*name).to_owned()).collect(),
        zone_level: false,
        ..ZoneDiscoverySettings::default()
    }
}

fn metrics(exporter: &Exporter) -> String {
    render(exporter)
}

/// The `zone_poll_success` lines, as `(zone_id, zone, value)`.
fn poll_success(exporter: &Exporter) -> Vec<(String, String, String)> {
    let mut lines: Vec<(String, String, String)> = Scrape::parse(&metrics(exporter))
        .samples
        .into_iter()
        .filter(|sample| sample.name == "cloudflare_aop_zone_poll_success")
        .map(|sample| {
            let label = |key: &str| sample.label(key).unwrap_or_default().to_owned();
            (label("zone_id"), label("zone"), sample.value_text.clone())
        })
        .collect();
    lines.sort();
    lines
}

fn zones_list_paths(sim: &Simulator) -> Vec<String> {
    sim.stats()
        .request_log
        .into_iter()
        .filter(|record| record.endpoint == Some(Endpoint::ZonesList))
        .map(|record| record.path)
        .collect()
}

#[tokio::test]
async fn a_zone_given_by_name_is_resolved_at_start_up_and_polled_under_its_id() {
    let scenario = Scenario::scale(2, 1, 1);
    let sim = Simulator::start(scenario.clone()).await.unwrap();
    let (zone0, zone1) = (&scenario.zones()[0], &scenario.zones()[1]);
    let mut settings = settings(
        &sim,
        vec![
            by_name("Zone-0.example", &["h0.zone-0.example"]),
            ZoneSettings::new(zone1.id.clone(), Vec::new()),
        ],
    );
    settings.zones[0].name = "zone-0.example".to_owned();
    settings.cloudflare.account_id = Some("01a7362d577a6c3019a474fd6f485823".to_owned());
    let exporter = Exporter::new(&settings, false).unwrap();
    exporter.resolve_zones().await.unwrap();
    assert_eq!(
        zones_list_paths(&sim),
        [
            "/client/v4/zones?name=zone-0.example&account.id=01a7362d577a6c3019a474fd6f485823&page=1&per_page=50"
        ],
        "one lookup, for the zone given by name, within the account"
    );
    exporter.cycle().await;
    assert_eq!(
        poll_success(&exporter),
        [
            (
                zone0.id.clone(),
                "zone-0.example".to_owned(),
                "1".to_owned()
            ),
            (zone1.id.clone(), zone1.id.clone(), "1".to_owned()),
        ]
    );
    let text = metrics(&exporter);
    assert!(
        text.contains(&format!(
            "cloudflare_aop_hostname_enabled{{zone_id=\"{}\",zone=\"zone-0.example\",hostname=\"h0.zone-0.example\"",
            zone0.id
        )),
        "{text}"
    );
    assert!(
        text.contains("cloudflare_aop_api_requests_total{account=\"default\",code=\"200\",endpoint=\"zones_list\"} 1"),
        "the lookup is counted like every request"
    );
}

#[tokio::test]
async fn a_name_no_zone_answers_to_is_an_error_naming_the_zone() {
    let sim = Simulator::start(Scenario::scale(1, 1, 0)).await.unwrap();
    let settings = settings(
        &sim,
        vec![
            ZoneSettings::new(Scenario::scale(1, 1, 0).zones()[0].id.clone(), Vec::new()),
            by_name("missing.example", &[]),
        ],
    );
    let exporter = Exporter::new(&settings, false).unwrap();
    let error = exporter.resolve_zones().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "zones[1] (name missing.example): no zone of that name is visible to the token (needs Zone Read)"
    );
    assert!(error.is_config_error());

    // The API failing is not the config's fault, and still names the zone.
    let mut unreachable = Settings::for_demo(
        sim.base_url(),
        Secret::new("wrong-token"),
        settings.zones.clone(),
    );
    unreachable.cloudflare.max_retries = 0;
    let exporter = Exporter::new(&unreachable, false).unwrap();
    let error = exporter.resolve_zones().await.unwrap_err();
    assert!(!error.is_config_error());
    assert!(
        error.to_string().starts_with(
            "zones[1] (name missing.example): cannot look up the zone's id: zones_list:"
        ),
        "{error}"
    );
    assert!(!error.to_string().contains("wrong-token"));
}

#[tokio::test]
async fn discovery_watches_every_zone_the_token_reads_but_the_excluded_paged_by_50() {
    let scenario = Scenario::scale(53, 0, 0);
    let sim = Simulator::start(scenario.clone()).await.unwrap();
    let mut settings = settings(&sim, Vec::new());
    settings.zone_discovery = discovery(&["zone-7.example"]);
    let exporter = Exporter::new(&settings, false).unwrap();
    exporter.resolve_zones().await.unwrap();
    assert_eq!(
        zones_list_paths(&sim),
        [
            "/client/v4/zones?page=1&per_page=50",
            "/client/v4/zones?page=2&per_page=50"
        ]
    );
    let watched = exporter.pollers[0].zones();
    assert_eq!(watched.len(), 52);
    assert!(watched.iter().all(|zone| zone.name != "zone-7.example"));
    assert!(
        watched
            .iter()
            .all(|zone| !zone.zone_level && zone.hostnames.is_empty())
    );

    sim.reset_stats();
    exporter.cycle().await;
    let stats = sim.stats();
    assert_eq!(
        stats.requests_to(Endpoint::HostnameCertificatesList),
        52,
        "one list per watched zone"
    );
    assert_eq!(
        stats.requests_to(Endpoint::ZonesList),
        0,
        "listed again only after the interval"
    );
    let polled = poll_success(&exporter);
    assert_eq!(polled.len(), 52);
    assert!(
        polled
            .iter()
            .all(|(_, zone, value)| zone != "zone-7.example" && value == "1")
    );
}

#[tokio::test]
async fn a_configured_entry_overrides_the_discovered_zone_of_the_same_id_or_name() {
    let scenario = Scenario::scale(3, 1, 1);
    let sim = Simulator::start(scenario.clone()).await.unwrap();
    let zones = scenario.zones();
    let mut by_id = ZoneSettings::new(zones[0].id.clone(), vec!["h0.zone-0.example".to_owned()]);
    "production".clone_into(&mut by_id.name);
    by_id.zone_level = false;
    let mut settings = settings(
        &sim,
        vec![by_id, by_name("zone-1.example", &["h0.zone-1.example"])],
    );
    settings.zone_discovery = discovery(&[]);
    let exporter = Exporter::new(&settings, false).unwrap();
    exporter.resolve_zones().await.unwrap();
    assert_eq!(
        sim.requests(Endpoint::ZonesList),
        1,
        "the listing resolves the name: no lookup of its own"
    );
    exporter.cycle().await;
    assert_eq!(
        poll_success(&exporter),
        [
            (zones[0].id.clone(), "production".to_owned(), "1".to_owned()),
            (
                zones[1].id.clone(),
                "zone-1.example".to_owned(),
                "1".to_owned()
            ),
            (
                zones[2].id.clone(),
                "zone-2.example".to_owned(),
                "1".to_owned()
            ),
        ],
        "one series per zone, under the configured entry's name"
    );
    assert_eq!(
        sim.zone_requests(Endpoint::HostnameGet, &zones[0].id),
        1,
        "the configured hostname is watched"
    );
    assert_eq!(
        sim.zone_requests(Endpoint::HostnameGet, &zones[2].id),
        0,
        "a discovered zone watches no hostname of its own"
    );
}

#[tokio::test]
async fn a_zone_that_disappears_stops_being_exported_and_its_history_goes() {
    let scenario = Scenario::scale(2, 1, 0);
    let sim = Simulator::start(scenario.clone()).await.unwrap();
    let gone_id = scenario.zones()[1].id.clone();
    let mut settings = settings(&sim, Vec::new());
    settings.zone_discovery = discovery(&[]);
    settings.zone_discovery.interval = Duration::ZERO;
    let exporter = Exporter::new(&settings, false).unwrap();
    exporter.resolve_zones().await.unwrap();
    exporter.cycle().await;
    assert!(metrics(&exporter).contains(&format!("zone_id=\"{gone_id}\"")));

    sim.with_state(|state| state.zones.retain(|zone| zone.id != gone_id));
    exporter.cycle().await;
    let text = metrics(&exporter);
    assert!(
        !text.contains(&gone_id),
        "no series of the zone gone are left:\n{text}"
    );
    assert_eq!(poll_success(&exporter).len(), 1);
    assert!(!exporter.snapshot.load().zones.contains_key(&gone_id));
}

#[tokio::test]
async fn a_zone_given_by_name_that_answers_no_such_zone_is_looked_up_again() {
    let scenario = Scenario::scale(1, 1, 0);
    let sim = Simulator::start(scenario.clone()).await.unwrap();
    let old_id = scenario.zones()[0].id.clone();
    let new_id = "0123456789abcdef0123456789abcdef".to_owned();
    let settings = settings(&sim, vec![by_name("zone-0.example", &[])]);
    let exporter = Exporter::new(&settings, false).unwrap();
    exporter.resolve_zones().await.unwrap();
    exporter.cycle().await;
    assert_eq!(exporter.pollers[0].zones()[0].id, old_id);

    // The zone is deleted and added again: same name, a new id.
    sim.with_state(|state| state.zones[0].id.clone_from(&new_id));
    sim.reset_stats();
    exporter.cycle().await;
    assert_eq!(
        poll_success(&exporter),
        [(old_id.clone(), "zone-0.example".to_owned(), "0".to_owned())],
        "the tick that finds it gone reports the failure"
    );
    assert_eq!(sim.requests(Endpoint::ZonesList), 0);

    exporter.cycle().await;
    assert_eq!(sim.requests(Endpoint::ZonesList), 1, "looked up once");
    assert_eq!(exporter.pollers[0].zones()[0].id, new_id);
    assert_eq!(
        poll_success(&exporter),
        [(new_id, "zone-0.example".to_owned(), "1".to_owned())]
    );
}

#[tokio::test]
async fn the_daemon_resolves_names_and_discovers_zones_before_its_first_tick() {
    use cloudflare_aop_exporter::daemon::{self, DaemonError};

    let scenario = Scenario::scale(2, 1, 1);
    let sim = Simulator::start(scenario.clone()).await.unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let mut settings = settings(
        &sim,
        vec![by_name("zone-0.example", &["h0.zone-0.example"])],
    );
    settings.zone_discovery = discovery(&[]);
    settings.state.dir = state_dir.path().to_path_buf();
    "0 0 0 1 1 *".clone_into(&mut settings.schedule.cron);
    settings.schedule.jitter = Duration::ZERO;

    // A name nothing answers to: the daemon does not start, and says which zone.
    let mut unknown = settings.clone();
    unknown.zones.push(by_name("missing.example", &[]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = daemon::run_on(unknown, listener, std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(&error, DaemonError::Zones(zone) if zone.is_config_error()));
    assert!(
        error
            .to_string()
            .starts_with("zones[1] (name missing.example)"),
        "{error}"
    );

    let running = Daemon::start(settings).await;
    let mut text = String::new();
    if running.wait_ready().await {
        let http = reqwest::Client::new();
        text = get_text(&http, &format!("http://{}/metrics", running.addr)).await;
    }
    for zone in scenario.zones() {
        let line = format!(
            "cloudflare_aop_zone_poll_success{{zone_id=\"{}\",zone=\"{}\"}} 1",
            zone.id, zone.name
        );
        assert!(text.contains(&line), "{line} missing from:\n{text}");
    }
    running.stop().await.unwrap();
}
