//! Several credentials (`[[accounts]]`) against a simulator serving two accounts, each token
//! with its own rate window and only its own zones: each credential stays within its own
//! budget, and a 429 on one leaves the other's zones fresh while the metrics name the paused
//! one.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cloudflare_aop_exporter::config::{AccountSettings, Credentials, Settings, Sourced};
use cloudflare_aop_exporter::daemon::{self, Exporter};
use cloudflare_aop_exporter::secret::Secret;
use cloudflare_aop_exporter::simulator::{RateLimit, Scenario, Simulator};
use common::metrics_text::{render, series};
use common::setup::{fast_retries, one_at_a_time_with_block};

/// The simulator's second account (`Scenario::scale_accounts` names it so).
const OTHER: &str = "account-1";

/// Two simulated accounts of 3 zones × 5 hostnames (18 requests for a full refresh each), and
/// settings with one `[[accounts]]` entry per account: `first` for the scenario's first
/// account, `second` for [`OTHER`], with these budgets per 5 minutes, ticking every second.
async fn two_accounts(first: u32, second: u32) -> (Scenario, Simulator, Settings) {
    let scenario = Scenario::scale_accounts(2, 3, 1, 5);
    let sim = Simulator::start(scenario.clone()).await.unwrap();
    let mut settings =
        daemon::demo_settings(&scenario, sim.base_url(), "127.0.0.1:0".parse().unwrap());
    "* * * * * *".clone_into(&mut settings.schedule.cron);
    settings.cloudflare.verify_token = false;
    fast_retries(&mut settings, 0);
    let template = settings.all_accounts().remove(0);
    let account = |name: &str, token: &str, zones, requests_per_5m| {
        let mut account = AccountSettings {
            name: name.to_owned(),
            zones: daemon::zone_settings(zones),
            ..template.clone()
        };
        account.cloudflare.credentials = Credentials::Token(Sourced::inline(Secret::new(token)));
        account.cloudflare.requests_per_5m = requests_per_5m;
        for zone in &mut account.zones {
            zone.zone_level = false;
        }
        account
    };
    settings.accounts = vec![
        account("first", scenario.token(), scenario.zones(), first),
        account(
            "second",
            scenario.token_of(OTHER).unwrap(),
            &scenario.accounts[0].zones,
            second,
        ),
    ];
    settings.zones.clear();
    (scenario, sim, settings)
}

fn metrics(exporter: &Exporter) -> BTreeMap<String, String> {
    series(&render(exporter))
}

/// When each zone was last polled successfully, by zone id.
fn last_success(exporter: &Exporter) -> BTreeMap<String, Option<chrono::DateTime<chrono::Utc>>> {
    exporter
        .snapshot
        .load()
        .zones
        .iter()
        .map(|(id, zone)| (id.clone(), zone.last_success))
        .collect()
}

#[tokio::test]
async fn each_credential_spends_only_its_own_budget_per_tick() {
    // Per one-second tick: 1,800 / 300 = 6 requests for the first, 900 / 300 = 3 for the second.
    let (_scenario, sim, settings) = two_accounts(1_800, 900).await;
    let exporter = Exporter::new(&settings, false).unwrap();
    let (mut first_total, mut second_total) = (0, 0);
    for tick in 0..4 {
        sim.reset_stats();
        exporter.cycle().await;
        let first = sim.account_stats("default").total;
        let second = sim.account_stats(OTHER).total;
        assert!(
            (1..=6).contains(&first),
            "tick {tick}: the first credential sent {first}, its tick's budget is 6"
        );
        assert!(
            (1..=3).contains(&second),
            "tick {tick}: the second credential sent {second}, its tick's budget is 3"
        );
        first_total += first;
        second_total += second;
    }
    assert!(
        first_total > second_total,
        "the bigger budget refreshes more: {first_total} vs {second_total}"
    );
    assert_eq!(sim.stats().rate_limited, 0);

    // Each credential's requests are counted under its own name.
    let all = metrics(&exporter);
    let sent = |account: &str| -> u64 {
        all.iter()
            .filter(|(key, _)| {
                key.starts_with("cloudflare_aop_api_requests_total{")
                    && key.contains(&format!("account=\"{account}\""))
            })
            .map(|(_, value)| value.parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(sent("first"), first_total);
    assert_eq!(sent("second"), second_total);
    assert!(all.contains_key(r#"cloudflare_aop_refresh_sweep_seconds{account="first"}"#));
    assert!(all.contains_key(r#"cloudflare_aop_refresh_sweep_seconds{account="second"}"#));
}

#[tokio::test]
async fn a_429_on_one_credential_leaves_the_other_fresh_and_names_the_paused_one() {
    let (scenario, sim, mut settings) = two_accounts(1_000_000, 1_000_000).await;
    // Ample quotas (the simulator reports 1,200 per 5 minutes by default): every tick refreshes
    // everything, so "fresh" means every zone polled again.
    sim.set_rate_limit(Some(RateLimit::per_5m(1_000_000)));
    assert!(sim.set_account_rate_limit(OTHER, Some(RateLimit::per_5m(1_000_000))));
    for account in &mut settings.accounts {
        one_at_a_time_with_block(&mut account.cloudflare, Duration::from_secs(30));
    }
    let exporter = Exporter::new(&settings, false).unwrap();
    exporter.cycle().await;
    let before = exporter.snapshot.load();
    let first_zones: Vec<String> = scenario.zones().iter().map(|z| z.id.clone()).collect();
    let second_zones: Vec<String> = scenario.accounts[0]
        .zones
        .iter()
        .map(|z| z.id.clone())
        .collect();
    for id in first_zones.iter().chain(&second_zones) {
        assert!(before.zones[id].poll_success, "zone {id} polled at first");
        assert_eq!(before.zones[id].hostnames.len(), 5);
    }

    // Cloudflare blocks the second credential: its next request draws a 429.
    assert!(sim.block_account(OTHER, Duration::from_secs(60)));
    let polled = last_success(&exporter);
    tokio::time::sleep(Duration::from_millis(20)).await;
    sim.reset_stats();
    for _ in 0..3 {
        exporter.cycle().await;
    }
    assert_eq!(
        sim.account_stats(OTHER).total,
        1,
        "only the request that drew the 429; nothing during the pause"
    );
    let first_sent = sim.account_stats("default").total;
    assert_eq!(
        first_sent,
        3 * 18,
        "the first refreshes everything every tick"
    );
    let after = exporter.snapshot.load();
    let now_polled = last_success(&exporter);
    for id in &first_zones {
        assert!(
            now_polled[id] > polled[id] && after.zones[id].poll_success,
            "the first credential's zone {id} stays fresh"
        );
    }
    for id in &second_zones {
        assert_eq!(
            after.zones[id].hostnames.len(),
            5,
            "the paused credential's zone {id} keeps its last good data"
        );
    }
    let all = metrics(&exporter);
    assert_eq!(
        all[r#"cloudflare_aop_rate_limit_pauses_total{account="second"}"#],
        "1"
    );
    assert_eq!(
        all[r#"cloudflare_aop_rate_limit_pauses_total{account="first"}"#],
        "0"
    );
    let paused_until = |account: &str| -> i64 {
        all[&format!(
            "cloudflare_aop_rate_limit_paused_until_timestamp_seconds{{account=\"{account}\"}}"
        )]
            .parse()
            .unwrap()
    };
    assert!(paused_until("second") > chrono::Utc::now().timestamp() + 20);
    assert_eq!(paused_until("first"), 0);
}

#[tokio::test]
async fn a_zone_of_another_account_is_forbidden_not_a_rejected_credential() {
    let (scenario, sim, settings) = two_accounts(1_800, 1_800).await;
    let first = &settings.accounts[0];
    let client =
        cloudflare_aop_exporter::cloudflare::Client::new(first.cloudflare.clone()).unwrap();
    let other_zone = &scenario.accounts[0].zones[0].id;
    let error = client
        .list_hostname_certificates(other_zone)
        .await
        .unwrap_err();
    assert_eq!(
        error.reason(),
        cloudflare_aop_exporter::cloudflare::ErrorReason::Forbidden,
        "{error}"
    );
    assert_eq!(error.cloudflare_codes(), vec![9109]);
    // The credential itself is fine: its own zone answers.
    assert!(
        client
            .list_hostname_certificates(&scenario.zones()[0].id)
            .await
            .is_ok()
    );
    assert_eq!(sim.stats().rate_limited, 0);
}

/// The first account's first zone, given by name only.
fn by_name(scenario: &Scenario) -> cloudflare_aop_exporter::config::ZoneSettings {
    let mut zone = daemon::zone_settings(&scenario.zones()[..1]).remove(0);
    zone.id.clear();
    zone
}

#[tokio::test]
async fn a_name_another_credential_cannot_see_is_refused_under_its_account_key() {
    let (scenario, _sim, mut settings) = two_accounts(1_800, 1_800).await;
    settings.accounts[1].zones.push(by_name(&scenario));
    let exporter = Exporter::new(&settings, false).unwrap();
    let error = exporter.resolve_zones().await.unwrap_err();
    assert!(error.is_config_error(), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("accounts[1].zones[3] (name zone-0.example): no zone of that name"),
        "{error}"
    );
}

#[tokio::test]
async fn a_zone_two_credentials_both_watch_is_refused_naming_both() {
    let (scenario, _sim, mut settings) = two_accounts(1_800, 1_800).await;
    // The same credential twice (a copy-paste): the zone by name resolves in both.
    settings.accounts[1].cloudflare.credentials =
        settings.accounts[0].cloudflare.credentials.clone();
    settings.accounts[1].zones = vec![by_name(&scenario)];
    let exporter = Exporter::new(&settings, false).unwrap();
    let error = exporter.resolve_zones().await.unwrap_err();
    assert!(error.is_config_error(), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("zone zone-0.example (")
            && text.contains("is watched by accounts first and second"),
        "{text}"
    );
}
