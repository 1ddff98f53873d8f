//! The refresh scheduler against the simulator: budgeted ticks, hot objects, failures that
//! cost nobody else, and a good citizen on a credential shared with other tools.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudflare_aop_exporter::cloudflare::Endpoint;
use cloudflare_aop_exporter::config::{self, Settings};
use cloudflare_aop_exporter::daemon::{self, Exporter};
use cloudflare_aop_exporter::simulator::{Fault, FaultRule, RateLimit, Scenario, Simulator};
use cloudflare_aop_exporter::state::Status;
use common::metrics_text::{render, series};
use common::process::within;
use common::setup::{fast_retries, one_at_a_time_with_block};

/// Settings for every zone and hostname of the simulator's scenario (ticks every 5 minutes:
/// each `cycle()` is one tick, sized for that), zone-level objects off.
fn settings_for(sim: &Simulator, scenario: &Scenario) -> Settings {
    let mut settings =
        daemon::demo_settings(scenario, sim.base_url(), "127.0.0.1:0".parse().unwrap());
    config::DEFAULT_CRON.clone_into(&mut settings.schedule.cron);
    for zone in &mut settings.zones {
        zone.zone_level = false;
    }
    settings.cloudflare.verify_token = false;
    fast_retries(&mut settings, 0);
    settings
}

/// The simulator serving `Scenario::scale(zones, certificates, hostnames)` and settings for
/// all of it (see [`settings_for`]) with a budget of `requests_per_5m`.
async fn scaled(
    (zones, certificates, hostnames): (usize, usize, usize),
    requests_per_5m: u32,
) -> (Scenario, Simulator, Settings) {
    let scenario = Scenario::scale(zones, certificates, hostnames);
    let sim = Simulator::start(scenario.clone()).await.unwrap();
    let mut settings = settings_for(&sim, &scenario);
    settings.cloudflare.requests_per_5m = requests_per_5m;
    (scenario, sim, settings)
}

/// Ticks every second: a tick may spend `requests_per_5m / 300` requests.
fn every_second(settings: &mut Settings) {
    "* * * * * *".clone_into(&mut settings.schedule.cron);
}

fn metrics(exporter: &Exporter) -> BTreeMap<String, String> {
    series(&render(exporter))
}

/// Hostname GETs per hostname since the last reset (from the request log).
fn hostname_gets(sim: &Simulator) -> BTreeMap<String, usize> {
    let mut gets = BTreeMap::new();
    for record in sim.stats().request_log {
        if record.endpoint == Some(Endpoint::HostnameGet) {
            let hostname = record
                .path
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            *gets.entry(hostname).or_default() += 1;
        }
    }
    gets
}

#[tokio::test]
async fn ample_budget_refreshes_everything_each_tick_with_the_minimum_requests() {
    let (scenario, sim, settings) = scaled((3, 2, 4), 100_000).await;
    let exporter = Exporter::new(&settings, false).unwrap();
    for tick in 1..=3 {
        sim.reset_stats();
        exporter.cycle().await;
        let stats = sim.stats();
        assert_eq!(
            stats.total,
            3 + 12,
            "tick {tick}: 3 lists + 12 hostnames, nothing more"
        );
        assert_eq!(stats.requests_to(Endpoint::HostnameCertificatesList), 3);
    }
    let all = metrics(&exporter);
    assert_eq!(
        all[r#"cloudflare_aop_refresh_sweep_seconds{account="default"}"#], "300",
        "a sweep never estimates below one tick"
    );
    let zone = &scenario.zones()[0];
    let oldest: i64 = all[&format!(
        "cloudflare_aop_zone_oldest_refresh_timestamp_seconds{{zone_id=\"{}\",zone=\"{}\"}}",
        zone.id,
        zone.display_name()
    )]
        .parse()
        .unwrap();
    assert!(
        (chrono::Utc::now().timestamp() - oldest).abs() <= 2,
        "{oldest}"
    );
}

#[tokio::test]
async fn a_scarce_budget_spreads_a_sweep_over_ticks_oldest_first() {
    // 2 zones × (1 list + 6 hostnames) = 14 requests a sweep; 900 per 5 min at one tick a
    // second is 3 requests a tick: a sweep takes 5 ticks.
    let (_scenario, sim, mut settings) = scaled((2, 2, 6), 900).await;
    every_second(&mut settings);
    let exporter = Exporter::new(&settings, false).unwrap();

    let mut last_fetched: BTreeMap<String, usize> = BTreeMap::new();
    let mut longest_wait = 0;
    for tick in 0..12 {
        sim.reset_stats();
        exporter.cycle().await;
        let stats = sim.stats();
        assert!(stats.total <= 3, "tick {tick} spent {} of 3", stats.total);
        for hostname in hostname_gets(&sim).keys() {
            if let Some(previous) = last_fetched.insert(hostname.clone(), tick) {
                longest_wait = longest_wait.max(tick - previous);
            }
        }
    }
    assert_eq!(last_fetched.len(), 12, "every hostname was fetched");
    assert!(
        longest_wait <= 5,
        "a hostname waited {longest_wait} ticks; a sweep is 5"
    );
    let all = metrics(&exporter);
    assert_eq!(
        all[r#"cloudflare_aop_refresh_sweep_seconds{account="default"}"#],
        "5"
    );
}

#[tokio::test]
async fn a_hostname_in_a_non_steady_state_is_rechecked_every_tick() {
    // 3 requests a tick against 11 a sweep.
    let (scenario, sim, mut settings) = scaled((1, 1, 10), 900).await;
    every_second(&mut settings);
    let zone = scenario.zones()[0].id.clone();
    let stuck = scenario.zones()[0].hostname_names()[3].to_owned();
    let exporter = Exporter::new(&settings, false).unwrap();
    // Let a first sweep see everything, then the hostname goes stuck.
    for _ in 0..4 {
        exporter.cycle().await;
    }
    assert!(sim.set_hostname_status(&zone, &stuck, Status::DeploymentTimedOut));
    let mut seen_at = None;
    for tick in 0..8 {
        sim.reset_stats();
        exporter.cycle().await;
        let snapshot = exporter.snapshot.load();
        let status = snapshot.zones[&zone].hostnames[&stuck].status;
        if seen_at.is_none() && status == Some(Status::DeploymentTimedOut) {
            seen_at = Some(tick);
        } else if seen_at.is_some() {
            assert_eq!(
                hostname_gets(&sim).get(&stuck),
                Some(&1),
                "tick {tick}: the stuck hostname is re-checked"
            );
        }
    }
    let seen_at = seen_at.expect("the status change showed");
    assert!(seen_at <= 4, "seen after {seen_at} ticks; a sweep is 4");
}

#[tokio::test]
async fn one_failing_hostname_leaves_its_zone_fresh_and_every_request_counted() {
    let (scenario, sim, settings) = scaled((2, 1, 5), 100_000).await;
    let exporter = Exporter::new(&settings, false).unwrap();
    exporter.cycle().await;
    let first = exporter.snapshot.load();
    let zone = scenario.zones()[0].id.clone();

    sim.reset_stats();
    sim.add_fault(
        FaultRule::always(Fault::ServerError { status: 500 })
            .on(Endpoint::HostnameGet)
            .zone(zone.clone())
            .times(1),
    );
    exporter.cycle().await;
    let second = exporter.snapshot.load();
    let hostnames = &second.zones[&zone].hostnames;
    let stale: Vec<&String> = hostnames
        .iter()
        .filter(|(_, hostname)| hostname.stale)
        .map(|(name, _)| name)
        .collect();
    assert_eq!(stale.len(), 1, "exactly the failed hostname is stale");
    for (name, hostname) in hostnames {
        let before = first.zones[&zone].hostnames[name].refreshed_at;
        if hostname.stale {
            assert_eq!(
                hostname.refreshed_at, before,
                "{name} keeps its last good data"
            );
            assert!(hostname.status.is_some(), "{name} keeps its status");
        } else {
            assert!(hostname.refreshed_at > before, "{name} was refreshed");
        }
    }
    assert!(!second.zones[&zone].poll_success);
    assert!(second.zones[&scenario.zones()[1].id].poll_success);

    // Every request the simulator answered is in api_requests_total, the failed one included.
    let all = metrics(&exporter);
    let counted: u64 = all
        .iter()
        .filter(|(key, _)| key.starts_with("cloudflare_aop_api_requests_total{"))
        .map(|(_, value)| value.parse::<u64>().unwrap())
        .sum();
    let served = sim.stats().total;
    assert_eq!(counted, 2 * (2 + 10), "two ticks of 2 lists + 10 hostnames");
    assert_eq!(served, 2 + 10);

    // The next tick refreshes it and the zone recovers.
    exporter.cycle().await;
    let third = exporter.snapshot.load();
    assert!(third.zones[&zone].poll_success);
    assert!(
        third.zones[&zone]
            .hostnames
            .values()
            .all(|hostname| !hostname.stale)
    );
}

#[tokio::test]
async fn a_hanging_zone_fails_within_the_tick_while_the_others_publish() {
    let (scenario, sim, mut settings) = scaled((3, 1, 2), 100_000).await;
    every_second(&mut settings);
    settings.cloudflare.request_timeout = Duration::from_millis(300);
    settings.cloudflare.max_retries = 3;
    let exporter = Arc::new(Exporter::new(&settings, false).unwrap());
    let hanging = scenario.zones()[0].id.clone();
    sim.add_fault(FaultRule::always(Fault::Hang).zone(hanging.clone()));

    // The tick is one second: retries that could not end inside it are not started, so it
    // ends with its deadline, not after every retry.
    within(Duration::from_secs(5), "the tick", exporter.cycle()).await;
    let snapshot = exporter.snapshot.load();
    assert!(!snapshot.zones[&hanging].poll_success);
    for zone in &scenario.zones()[1..] {
        let data = &snapshot.zones[&zone.id];
        assert!(data.poll_success, "{} published", zone.id);
        assert_eq!(data.hostnames.len(), 2);
    }
    let all = metrics(&exporter);
    assert_eq!(
        all[&format!(
            "cloudflare_aop_zone_poll_success{{zone_id=\"{hanging}\",zone=\"{}\"}}",
            scenario.zones()[0].display_name()
        )],
        "0"
    );
}

#[tokio::test]
async fn after_a_429_nothing_is_sent_until_the_block_has_passed() {
    let (scenario, sim, mut settings) = scaled((2, 1, 3), 100_000).await;
    settings.cloudflare.max_retries = 2;
    // Retry-After: 0 means Cloudflare's whole block (compressed here).
    one_at_a_time_with_block(&mut settings.cloudflare, Duration::from_secs(2));
    let exporter = Exporter::new(&settings, false).unwrap();
    exporter.cycle().await;
    let before = exporter.snapshot.load();

    sim.reset_stats();
    sim.add_fault(
        FaultRule::always(Fault::RateLimited {
            retry_after_secs: 0,
        })
        .times(1),
    );
    let blocked_at = Instant::now();
    exporter.cycle().await;
    let during: Vec<_> = sim.stats().request_log;
    assert_eq!(
        during.len(),
        1,
        "only the request that drew the 429: {during:?}"
    );
    // Ticks inside the block send nothing and keep the data.
    while blocked_at.elapsed() < Duration::from_millis(1500) {
        exporter.cycle().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(sim.stats().total, 1, "nothing went out during the block");
    let kept = exporter.snapshot.load();
    for zone in scenario.zones() {
        assert_eq!(
            kept.zones[&zone.id].hostnames.len(),
            before.zones[&zone.id].hostnames.len()
        );
    }
    let all = metrics(&exporter);
    assert_eq!(
        all[r#"cloudflare_aop_rate_limit_pauses_total{account="default"}"#],
        "1"
    );
    let until: i64 =
        all[r#"cloudflare_aop_rate_limit_paused_until_timestamp_seconds{account="default"}"#]
            .parse()
            .unwrap();
    assert!(until > chrono::Utc::now().timestamp() - 2, "{until}");

    tokio::time::sleep(Duration::from_millis(700)).await;
    exporter.cycle().await;
    assert!(
        sim.stats().total > 1,
        "requests resume once the block is over"
    );
}

/// A token whose user may send 50 requests per 2 s window (Cloudflare's limit, compressed),
/// 100 hostnames to refresh, and settings that tick every second with an ample budget of
/// their own: only the shared limit holds the exporter back.
async fn shared_credential() -> (Simulator, Settings) {
    let (_scenario, sim, mut settings) = scaled((4, 1, 25), 1_000_000).await;
    sim.set_rate_limit(Some(RateLimit {
        max_requests: 50,
        window: Duration::from_secs(2),
        retry_after: Duration::from_secs(2),
    }));
    every_second(&mut settings);
    settings.cloudflare.max_concurrency = 8;
    (sim, settings)
}

/// Another tool on the same credential: tokens/verify in a loop at `per_second`.
fn other_tool(
    sim: &Simulator,
    per_second: u32,
    for_how_long: Duration,
) -> tokio::task::JoinHandle<(u64, u64)> {
    let url = format!("{}/user/tokens/verify", sim.base_url());
    let token = sim.token();
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let started = Instant::now();
        let (mut sent, mut refused) = (0, 0);
        let pause = Duration::from_secs(1) / per_second;
        while started.elapsed() < for_how_long {
            let response = http.get(&url).bearer_auth(&token).send().await.unwrap();
            sent += 1;
            if response.status() == 429 {
                refused += 1;
            }
            tokio::time::sleep(pause).await;
        }
        (sent, refused)
    })
}

#[tokio::test]
async fn beside_another_tool_spending_40_percent_nobody_gets_a_429() {
    // 50 requests per 2 s window (25/s); the other tool spends 10/s (40 %) for five windows; the
    // exporter alone would go much faster: its reserve and the others' share hold it back.
    let (sim, settings) = shared_credential().await;
    let exporter = Arc::new(Exporter::new(&settings, false).unwrap());
    let other = other_tool(&sim, 10, Duration::from_secs(10));
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        exporter.cycle().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (sent, refused) = other.await.unwrap();
    assert!(sent >= 80, "the other tool kept going ({sent})");
    assert_eq!(refused, 0, "the other tool never saw a 429");
    assert_eq!(sim.stats().rate_limited, 0, "the simulator served no 429");
    let exporter_requests: usize = sim
        .stats()
        .request_log
        .iter()
        .filter(|record| record.endpoint == Some(Endpoint::HostnameGet))
        .count();
    assert!(
        exporter_requests > 50,
        "the exporter kept refreshing ({exporter_requests})"
    );
}

#[tokio::test]
async fn two_exporters_with_one_token_cause_no_429() {
    // 50 requests per 2 s window; the second exporter starts fresh after 3 s, when the first has
    // the window in use: it must read the counter before it spends.
    let (sim, settings) = shared_credential().await;
    let pair: Vec<Arc<Exporter>> = (0..2)
        .map(|_| Arc::new(Exporter::new(&settings, false).unwrap()))
        .collect();
    let start = Instant::now();
    let runs: Vec<_> = pair
        .iter()
        .zip([Duration::ZERO, Duration::from_secs(3)])
        .map(|(exporter, delay)| {
            let exporter = exporter.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                while start.elapsed() < Duration::from_secs(10) {
                    exporter.cycle().await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        })
        .collect();
    for run in runs {
        run.await.unwrap();
    }
    assert_eq!(sim.stats().rate_limited, 0, "the simulator served no 429");
    let fetched: BTreeSet<String> = hostname_gets(&sim).into_keys().collect();
    assert!(
        fetched.len() >= 50,
        "they kept refreshing ({})",
        fetched.len()
    );
}
