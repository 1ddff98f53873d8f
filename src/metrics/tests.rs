//! Unit tests of `metrics`: exact lines for a hand-built snapshot and the registry's counters.
//! The whole text's format and structure: `tests/metrics_format.rs` (`promtool check metrics`).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use strum::IntoEnumIterator as _;

use super::testing::synthetic_snapshot;
use super::*;
use crate::alerts::{AlertObserver as _, NotificationOutcome};
use crate::cloudflare::RequestObserver as _;
use crate::poller::{PollObserver as _, PollOutcome};
use crate::state::{
    AccountHealth, AssociationState, CertificateState, HostnameState, Scope, Status, ZoneSnapshot,
};
use crate::x509::{CertificateFacts, Check, KeyAlgorithm, PublicKeyInfo};

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).unwrap()
}

fn facts(
    subject: &str,
    issuer: &str,
    serial: &str,
    signature: &str,
    not_after: i64,
) -> CertificateFacts {
    CertificateFacts {
        not_before: at(1_735_689_600),
        not_after: at(not_after),
        subject: subject.to_owned(),
        issuer: issuer.to_owned(),
        serial_hex: "00".to_owned(),
        serial_decimal: serial.to_owned(),
        subject_alt_names: Vec::new(),
        key: PublicKeyInfo {
            algorithm: KeyAlgorithm::Ec,
            bits: Some(256),
            curve: Some("P-256".to_owned()),
        },
        signature_algorithm: signature.to_owned(),
        extended_key_usage: None,
        sha256_fingerprint: "ab".to_owned(),
    }
}

fn certificate(scope: Scope, id: &str) -> CertificateState {
    CertificateState::new(scope, id)
}

fn hostname(name: &str, association: AssociationState) -> HostnameState {
    HostnameState::new(name, association)
}

/// z1: polled fine, three certificates and three hostnames covering the edge cases;
/// z2: attempted but never successful; z3: configured, never attempted.
fn small_snapshot() -> Snapshot {
    let mut z1 = ZoneSnapshot::new("z1", "example.com");
    z1.poll_success = true;
    z1.last_attempt = Some(at(1_767_200_000));
    z1.last_success = Some(at(1_767_200_000));
    z1.zone_enabled = Some(true);
    z1.zone_level_polled = true;

    let mut c1 = certificate(Scope::Hostname, "c1");
    c1.status = Some(Status::Unknown);
    c1.status_since = Some(at(1_736_100_000));
    c1.api_expires_on = Some(at(1_767_225_600));
    c1.uploaded_on = Some(at(1_736_000_000));
    c1.issuer = Some("API CA".to_owned());
    // The API sent no serial and an empty signature: both come from the PEM.
    c1.signature = Some(String::new());
    c1.facts = Some(facts(
        "CN=a \"quoted\" \\ back\nslash",
        "CN=PEM CA",
        "123456",
        "sha256WithRSAEncryption",
        1_800_000_000,
    ));
    c1.checks = vec![(Check::KeyStrength, false), (Check::PemParses, true)];
    c1.monitored_hostnames = 2;

    let mut c3 = certificate(Scope::Hostname, "c3");
    c3.status = Some(Status::Active);
    c3.facts = Some(facts(
        "CN=c3",
        "CN=PEM CA",
        "999",
        "ecdsa-with-SHA256",
        1_798_761_600,
    ));

    let mut c2 = certificate(Scope::Zone, "c2");
    c2.uploaded_on = Some(at(1_736_200_000));

    for c in [c1, c2, c3] {
        z1.certificates.insert((c.scope, c.id.clone()), c);
    }

    let mut a = hostname("a.example.com", AssociationState::Enabled);
    a.status = Some(Status::Active);
    a.status_since = Some(at(1_736_300_000));
    a.cert_id = Some("c1".to_owned());
    a.cert_status = Some(Status::PendingDeployment);
    a.cert_expires_on = Some(at(1_767_225_600));
    // Voided: the association still names c1 but reports no statuses.
    let mut b = hostname("b.example.com", AssociationState::Voided);
    b.cert_id = Some("c1".to_owned());
    let mut c = hostname("c.example.com", AssociationState::Absent);
    c.source = crate::state::HostnameSource::Discovered;
    for h in [a, b, c] {
        z1.hostnames.insert(h.hostname.clone(), h);
    }

    let mut z2 = ZoneSnapshot::new("z2", "other.example.com");
    z2.last_attempt = Some(at(1_767_200_000));
    z2.last_error = Some("zone_certificates_list: HTTP 500".to_owned());
    let z3 = ZoneSnapshot::new("z3", "never.example.com");

    let mut snapshot = Snapshot::default();
    snapshot.accounts.insert(
        "default".to_owned(),
        AccountHealth {
            token_valid: Some(false),
            sweep_seconds: None,
        },
    );
    for zone in [z1, z2, z3] {
        snapshot
            .zones
            .insert(zone.zone_id.clone(), std::sync::Arc::new(zone));
    }
    snapshot
}

fn rendered_snapshot(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    render_snapshot(snapshot, &mut out);
    out
}

fn sample_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|line| !line.starts_with('#')).collect()
}

/// The 8 lines of a status `StateSet`, `current` set to 1 (the values and their order are
/// pinned by `state_set_values_are_spelled_as_documented`).
fn status_set(name: &str, labels: &str, current: &str) -> Vec<String> {
    Status::ALL
        .iter()
        .map(|status| {
            let value = u8::from(status.as_str() == current);
            format!("{name}{{{labels},status=\"{}\"}} {value}", status.as_str())
        })
        .collect()
}

/// The 4 lines of a hostname's association `StateSet`, `current` set to 1.
fn association_set(labels: &str, current: &str) -> Vec<String> {
    ["enabled", "disabled", "voided", "absent"]
        .iter()
        .map(|state| {
            let value = u8::from(*state == current);
            format!("cloudflare_aop_hostname_association{{{labels},state=\"{state}\"}} {value}")
        })
        .collect()
}

const Z1: &str = r#"zone_id="z1",zone="example.com""#;

#[test]
fn small_snapshot_renders_exactly_these_series() {
    let c1 = format!(r#"{Z1},scope="hostname",cert_id="c1""#);
    let c3 = format!(r#"{Z1},scope="hostname",cert_id="c3""#);
    let c2 = format!(r#"{Z1},scope="zone",cert_id="c2""#);
    let a = format!(r#"{Z1},hostname="a.example.com""#);
    let b = format!(r#"{Z1},hostname="b.example.com""#);
    let c = format!(r#"{Z1},hostname="c.example.com""#);

    let mut expected: Vec<String> = vec![
        format!(
            r#"cloudflare_aop_certificate_info{{{c1},issuer="API CA",serial_number="123456",signature="sha256WithRSAEncryption",subject="CN=a \"quoted\" \\ back\nslash"}} 1"#
        ),
        format!(
            r#"cloudflare_aop_certificate_info{{{c3},issuer="CN=PEM CA",serial_number="999",signature="ecdsa-with-SHA256",subject="CN=c3"}} 1"#
        ),
        format!(
            r#"cloudflare_aop_certificate_info{{{c2},issuer="",serial_number="",signature="",subject=""}} 1"#
        ),
        // API expires_on for c1, the PEM's notAfter for c3, nothing known for c2.
        r#"cloudflare_aop_certificate_expiry_timestamp_seconds{zone_id="z1",zone="example.com",scope="hostname",cert_id="c1"} 1767225600"#.to_owned(),
        format!("cloudflare_aop_certificate_expiry_timestamp_seconds{{{c3}}} 1798761600"),
        format!("cloudflare_aop_certificate_not_before_timestamp_seconds{{{c1}}} 1735689600"),
        format!("cloudflare_aop_certificate_not_before_timestamp_seconds{{{c3}}} 1735689600"),
        format!("cloudflare_aop_certificate_uploaded_timestamp_seconds{{{c1}}} 1736000000"),
        format!("cloudflare_aop_certificate_uploaded_timestamp_seconds{{{c2}}} 1736200000"),
    ];
    // Status unknown is a value of the StateSet; c2 has no status, so no series.
    expected.extend(status_set(
        "cloudflare_aop_certificate_status",
        &c1,
        "unknown",
    ));
    expected.extend(status_set(
        "cloudflare_aop_certificate_status",
        &c3,
        "active",
    ));
    expected.extend([
        format!("cloudflare_aop_certificate_status_since_timestamp_seconds{{{c1}}} 1736100000"),
        // Only per-hostname certificates, and without the scope label.
        format!(r#"cloudflare_aop_certificate_hostnames{{{Z1},cert_id="c1"}} 2"#),
        format!(r#"cloudflare_aop_certificate_hostnames{{{Z1},cert_id="c3"}} 0"#),
        // In Check::ALL order, whatever order the poller stored them in.
        format!(r#"cloudflare_aop_certificate_check{{{c1},check="pem_parses"}} 1"#),
        format!(r#"cloudflare_aop_certificate_check{{{c1},check="key_strength"}} 0"#),
        format!(r#"cloudflare_aop_hostname_info{{{a},source="configured"}} 1"#),
        format!(r#"cloudflare_aop_hostname_info{{{b},source="configured"}} 1"#),
        format!(r#"cloudflare_aop_hostname_info{{{c},source="discovered"}} 1"#),
    ]);
    for (labels, state) in [(&a, "enabled"), (&b, "voided"), (&c, "absent")] {
        expected.extend(association_set(labels, state));
    }
    expected.extend([
        format!("cloudflare_aop_hostname_enabled{{{a}}} 1"),
        format!("cloudflare_aop_hostname_enabled{{{b}}} 0"),
        format!("cloudflare_aop_hostname_enabled{{{c}}} 0"),
    ]);
    expected.extend(status_set("cloudflare_aop_hostname_status", &a, "active"));
    expected.extend(status_set(
        "cloudflare_aop_hostname_certificate_status",
        &format!(r#"{a},cert_id="c1""#),
        "pending_deployment",
    ));
    expected.extend([
        format!(
            r#"cloudflare_aop_hostname_certificate_expiry_timestamp_seconds{{{a},cert_id="c1"}} 1767225600"#
        ),
        format!("cloudflare_aop_hostname_status_since_timestamp_seconds{{{a}}} 1736300000"),
        format!("cloudflare_aop_zone_enabled{{{Z1}}} 1"),
        format!(r#"cloudflare_aop_zone_certificates{{{Z1},scope="hostname"}} 2"#),
        format!(r#"cloudflare_aop_zone_certificates{{{Z1},scope="zone"}} 1"#),
        format!("cloudflare_aop_zone_poll_success{{{Z1}}} 1"),
        // z2 was attempted and failed; z3 was never attempted, so it has no series at all.
        r#"cloudflare_aop_zone_poll_success{zone_id="z2",zone="other.example.com"} 0"#.to_owned(),
        format!("cloudflare_aop_zone_last_success_timestamp_seconds{{{Z1}}} 1767200000"),
        r#"cloudflare_aop_token_valid{account="default"} 0"#.to_owned(),
    ]);

    let text = rendered_snapshot(&small_snapshot());
    assert_eq!(sample_lines(&text), expected, "\n{text}");
}

#[test]
fn every_family_has_one_help_and_one_type_line_before_its_series() {
    let text = rendered_snapshot(&small_snapshot());
    assert!(text.starts_with(
        "# HELP cloudflare_aop_certificate_info AOP certificate metadata (value always 1), as of \
         the last successful poll of the zone (refreshed by the poller, not per scrape).\n\
         # TYPE cloudflare_aop_certificate_info gauge\n"
    ));
    assert!(text.contains(
        "# TYPE cloudflare_aop_certificate_status gauge\n\
         cloudflare_aop_certificate_status{"
    ));
    assert!(
        text.ends_with(
            "# TYPE cloudflare_aop_token_valid gauge\ncloudflare_aop_token_valid{account=\"default\"} 0\n"
        )
    );
    for line in text.lines().filter(|line| line.starts_with("# HELP")) {
        assert!(
            line.ends_with("(refreshed by the poller, not per scrape)."),
            "{line}"
        );
    }
}

#[test]
fn empty_snapshot_renders_nothing() {
    assert_eq!(rendered_snapshot(&Snapshot::default()), "");
}

#[test]
fn zone_level_certificates_not_polled_have_no_count() {
    let mut snapshot = small_snapshot();
    let z1 = std::sync::Arc::make_mut(snapshot.zones.get_mut("z1").unwrap());
    z1.zone_level_polled = false;
    z1.certificates
        .retain(|(scope, _), _| *scope == Scope::Hostname);
    let text = rendered_snapshot(&snapshot);
    assert!(
        text.contains(r#"cloudflare_aop_zone_certificates{zone_id="z1",zone="example.com",scope="hostname"} 2"#),
        "{text}"
    );
    assert!(
        !text.contains(r#"scope="zone"}"#),
        "zone_level = false: unknown, so no series (not 0)\n{text}"
    );
}

#[test]
fn vanished_objects_have_no_series() {
    let mut snapshot = small_snapshot();
    let before = rendered_snapshot(&snapshot);
    assert!(before.contains(r#"cert_id="c3""#));
    assert!(before.contains(r#"hostname="c.example.com""#));

    let z1 = std::sync::Arc::make_mut(snapshot.zones.get_mut("z1").unwrap());
    z1.certificates.remove(&(Scope::Hostname, "c3".to_owned()));
    z1.hostnames.remove("c.example.com");
    let after = rendered_snapshot(&snapshot);
    assert!(!after.contains(r#"cert_id="c3""#), "{after}");
    assert!(!after.contains(r#"hostname="c.example.com""#), "{after}");
    assert!(after.contains(r#"cert_id="c1""#));
}

#[test]
fn chunks_concatenate_to_the_whole_text_and_end_on_series() {
    let metrics = metrics();
    metrics.for_account("default").rate_limit_remaining(7);
    let mut snapshot = synthetic_snapshot(20, 10, 3);
    snapshot.zones.extend(small_snapshot().zones);
    let whole = metrics.render(&snapshot);
    for chunk_len in [0, 1, 1000, 64 * 1024, RENDER_CHUNK_LEN] {
        let mut chunks = Vec::new();
        metrics.render_chunks(&snapshot, chunk_len, |chunk| chunks.push(chunk));
        assert_eq!(chunks.concat(), whole, "chunk_len {chunk_len}");
        if chunk_len < 64 * 1024 {
            assert!(
                chunks.len() > 10,
                "chunk_len {chunk_len}: {} chunks",
                chunks.len()
            );
        }
        // All but the last (which ends with the registry's families) end with a series.
        for chunk in &chunks[..chunks.len() - 1] {
            let last_line = chunk.trim_end_matches('\n').rsplit('\n').next().unwrap();
            assert!(
                chunk.ends_with('\n') && !last_line.starts_with('#'),
                "{chunk}"
            );
        }
    }
}

#[test]
fn snapshot_chunks_skip_empty_families_like_the_whole_text() {
    let snapshot = small_snapshot();
    let mut chunks = Vec::new();
    render_snapshot_chunks(&snapshot, 1, |chunk| chunks.push(chunk));
    assert_eq!(chunks.concat(), rendered_snapshot(&snapshot));

    let mut never_polled = Snapshot::default();
    let zone = ZoneSnapshot::new("z3", "never.example.com");
    never_polled
        .zones
        .insert(zone.zone_id.clone(), std::sync::Arc::new(zone));
    let mut chunks = Vec::new();
    render_snapshot_chunks(&never_polled, 1, |chunk| chunks.push(chunk));
    assert!(chunks.is_empty(), "{chunks:?}");
}

#[test]
fn token_valid_is_absent_until_checked() {
    let mut snapshot = small_snapshot();
    let health = snapshot.accounts.get_mut("default").unwrap();
    health.token_valid = None;
    assert!(!rendered_snapshot(&snapshot).contains("token_valid"));
    snapshot.accounts.get_mut("default").unwrap().token_valid = Some(true);
    assert!(
        rendered_snapshot(&snapshot)
            .lines()
            .any(|line| line == r#"cloudflare_aop_token_valid{account="default"} 1"#)
    );
}

#[test]
fn each_credential_has_its_own_token_valid_and_sweep() {
    let mut snapshot = Snapshot::default();
    for (account, valid, sweep) in [("prod", Some(true), 299.2), ("staging", Some(false), 60.0)] {
        snapshot.accounts.insert(
            account.to_owned(),
            AccountHealth {
                token_valid: valid,
                sweep_seconds: Some(sweep),
            },
        );
    }
    snapshot
        .accounts
        .insert("new".to_owned(), AccountHealth::default());
    let text = rendered_snapshot(&snapshot);
    assert_eq!(
        sample_lines(&text),
        [
            r#"cloudflare_aop_refresh_sweep_seconds{account="prod"} 300"#,
            r#"cloudflare_aop_refresh_sweep_seconds{account="staging"} 60"#,
            r#"cloudflare_aop_token_valid{account="prod"} 1"#,
            r#"cloudflare_aop_token_valid{account="staging"} 0"#,
        ],
        "{text}"
    );
}

#[test]
fn zone_labels_are_escaped() {
    let mut snapshot = Snapshot::default();
    let mut zone = ZoneSnapshot::new("z\"1", "back\\slash\nname");
    zone.last_attempt = Some(at(0));
    snapshot
        .zones
        .insert(zone.zone_id.clone(), std::sync::Arc::new(zone));
    assert_eq!(
        sample_lines(&rendered_snapshot(&snapshot)),
        [r#"cloudflare_aop_zone_poll_success{zone_id="z\"1",zone="back\\slash\nname"} 0"#]
    );
}

#[test]
fn state_set_values_are_spelled_as_documented() {
    let statuses: Vec<&str> = Status::iter().map(Status::as_str).collect();
    assert_eq!(
        statuses.join(" "),
        "initializing pending_deployment pending_deletion active deleted deployment_timed_out \
         deletion_timed_out unknown"
    );
    let states: Vec<&str> = AssociationState::iter()
        .map(AssociationState::as_str)
        .collect();
    assert_eq!(states.join(" "), "enabled disabled voided absent");
}

#[test]
fn integers_format_like_display() {
    for value in [0, 7, 10, -1, 1_767_225_600, -86_400, i64::MAX, i64::MIN] {
        let mut out = String::new();
        snapshot::push_sample(&mut out, "x", value);
        assert_eq!(out, format!("x}} {value}\n"));
    }
}

/// Metrics without the `process_*` families, whose values change from one render to the next.
fn metrics() -> std::sync::Arc<Metrics> {
    std::sync::Arc::new(
        Metrics::with_options(MetricsOptions {
            exclude_families: PROCESS_FAMILIES
                .iter()
                .map(|&name| name.to_owned())
                .collect(),
            ..MetricsOptions::default()
        })
        .unwrap(),
    )
}

#[cfg(target_os = "linux")]
#[test]
fn process_families_are_exported() {
    let text = Metrics::new().unwrap().render(&Snapshot::default());
    for family in PROCESS_FAMILIES {
        // process_virtual_memory_max_bytes is left out when the limit is unlimited.
        if family != "process_virtual_memory_max_bytes" {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family} missing"
            );
        }
    }
    let resident: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("process_resident_memory_bytes "))
        .expect("process_resident_memory_bytes")
        .parse()
        .unwrap();
    assert!(resident > 1_000_000.0, "resident memory {resident}");
}

#[test]
fn current_statesets_keep_only_the_member_that_is_1() {
    let snapshot = synthetic_snapshot(20, 10, 3);
    let full = Metrics::with_options(MetricsOptions::default())
        .unwrap()
        .render(&snapshot);
    let current = Metrics::with_options(MetricsOptions {
        statesets: StateSets::Current,
        ..MetricsOptions::default()
    })
    .unwrap()
    .render(&snapshot);
    let state_set = |line: &&str| {
        [
            "cloudflare_aop_certificate_status{",
            "cloudflare_aop_hostname_association{",
            "cloudflare_aop_hostname_status{",
            "cloudflare_aop_hostname_certificate_status{",
        ]
        .iter()
        .any(|family| line.starts_with(family))
    };
    let full_ones: Vec<&str> = full
        .lines()
        .filter(state_set)
        .filter(|line| line.ends_with(" 1"))
        .collect();
    let current_lines: Vec<&str> = current.lines().filter(state_set).collect();
    assert!(!current_lines.is_empty());
    assert_eq!(current_lines, full_ones);
    assert!(full.lines().filter(state_set).count() > 4 * current_lines.len());
    // Everything else is the same (the process families aside).
    let others = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| !state_set(line) && !line.contains("process_"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(others(&full), others(&current));
}

#[test]
fn excluded_families_are_left_out_of_both_parts() {
    let snapshot = synthetic_snapshot(5, 4, 3);
    let excluded = [
        "cloudflare_aop_certificate_check",
        "cloudflare_aop_hostname_status",
        "cloudflare_aop_token_valid",
        "cloudflare_aop_api_errors_total",
        "process_open_fds",
    ];
    let metrics = Metrics::with_options(MetricsOptions {
        exclude_families: excluded.iter().map(|&name| name.to_owned()).collect(),
        ..MetricsOptions::default()
    })
    .unwrap();
    let text = metrics.render(&snapshot);
    let mut chunks = Vec::new();
    metrics.render_chunks(&snapshot, 1000, |chunk| chunks.push(chunk));
    for text in [text, chunks.concat()] {
        for family in excluded {
            assert!(
                !text
                    .lines()
                    .any(|line| line.starts_with(&format!("{family}{{"))
                        || line.starts_with(&format!("{family} "))
                        || line.contains(&format!(" {family} "))),
                "{family} still there"
            );
        }
        assert!(text.contains("cloudflare_aop_hostname_certificate_status{"));
        assert!(text.contains("# TYPE cloudflare_aop_polls_total counter"));
    }
}

#[test]
fn every_rendered_family_is_a_known_family() {
    let metrics = std::sync::Arc::new(Metrics::new().unwrap());
    metrics.for_account("default").rate_limit_remaining(3);
    let text = metrics.render(&synthetic_snapshot(5, 4, 3));
    let known: BTreeSet<&str> = family_names().collect();
    let rendered: BTreeSet<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    let unknown: Vec<_> = rendered.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "families missing from family_names(): {unknown:?}"
    );
    assert!(rendered.len() >= 30, "{rendered:?}");
}

fn has_line(text: &str, expected: &str) -> bool {
    text.lines().any(|line| line == expected)
}

#[test]
fn fresh_metrics_pre_initialise_the_series_rate_needs() {
    let metrics = metrics();
    metrics.for_account("prod");
    let text = metrics.render(&Snapshot::default());
    for outcome in ["success", "partial", "failure", "skipped"] {
        assert!(
            has_line(
                &text,
                &format!(r#"cloudflare_aop_polls_total{{outcome="{outcome}"}} 0"#)
            ),
            "{text}"
        );
    }
    let errors = text
        .lines()
        .filter(|line| {
            line.starts_with("cloudflare_aop_api_errors_total{") && line.ends_with("} 0")
        })
        .count();
    assert_eq!(errors, Endpoint::ALL.len() * ErrorReason::ALL.len());
    assert!(has_line(
        &text,
        r#"cloudflare_aop_api_errors_total{account="prod",endpoint="dns_records_list",reason="api_error"} 0"#
    ));
    assert!(has_line(
        &text,
        r#"cloudflare_aop_rate_limit_pauses_total{account="prod"} 0"#
    ));
    for reason in "deployment_timed_out deletion_timed_out stuck_pending expiring".split(' ') {
        assert!(has_line(
            &text,
            &format!(r#"cloudflare_aop_alerts_firing{{reason="{reason}"}} 0"#)
        ));
    }
    assert!(has_line(
        &text,
        &format!(
            r#"cloudflare_aop_build_info{{revision="{REVISION}",version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        )
    ));
    assert!(!text.contains("rate_limit_remaining"), "{text}");
    assert!(has_line(
        &text,
        "cloudflare_aop_poll_duration_seconds_count 0"
    ));
    // Without leader election every instance leads.
    assert!(has_line(&text, "cloudflare_aop_leader 1"));
}

#[test]
fn the_leader_gauge_follows_the_role() {
    let metrics = metrics();
    metrics.set_leader(false);
    let text = metrics.render(&Snapshot::default());
    assert!(has_line(&text, "cloudflare_aop_leader 0"), "{text}");
    assert!(has_line(&text, "# TYPE cloudflare_aop_leader gauge"));
    metrics.set_leader(true);
    assert!(has_line(
        &metrics.render(&Snapshot::default()),
        "cloudflare_aop_leader 1"
    ));
}

#[test]
fn api_attempts_are_counted_by_code_and_reason() {
    let registry = metrics();
    let metrics = registry.for_account("prod");
    let ok = Attempt {
        endpoint: Endpoint::HostnameGet,
        status: Some(200),
        elapsed: Duration::from_millis(40),
        error: None,
    };
    metrics.attempt_finished(&ok);
    metrics.attempt_finished(&ok);
    metrics.attempt_finished(&Attempt {
        endpoint: Endpoint::HostnameGet,
        status: None,
        elapsed: Duration::from_secs(10),
        error: Some(ErrorReason::Timeout),
    });
    metrics.attempt_finished(&Attempt {
        endpoint: Endpoint::ZoneSettingsGet,
        status: Some(429),
        elapsed: Duration::from_millis(5),
        error: Some(ErrorReason::RateLimited),
    });

    // Another credential's requests count apart.
    registry.for_account("staging").attempt_finished(&ok);
    let text = registry.render(&Snapshot::default());
    for expected in [
        r#"cloudflare_aop_api_requests_total{account="staging",code="200",endpoint="hostname_get"} 1"#,
        r#"cloudflare_aop_api_requests_total{account="prod",code="200",endpoint="hostname_get"} 2"#,
        r#"cloudflare_aop_api_requests_total{account="prod",code="error",endpoint="hostname_get"} 1"#,
        r#"cloudflare_aop_api_requests_total{account="prod",code="429",endpoint="zone_settings_get"} 1"#,
        r#"cloudflare_aop_api_errors_total{account="prod",endpoint="hostname_get",reason="timeout"} 1"#,
        r#"cloudflare_aop_api_errors_total{account="prod",endpoint="hostname_get",reason="network"} 0"#,
        r#"cloudflare_aop_api_errors_total{account="prod",endpoint="zone_settings_get",reason="rate_limited"} 1"#,
        r#"cloudflare_aop_api_request_duration_seconds_count{account="prod",endpoint="hostname_get"} 3"#,
        r#"cloudflare_aop_api_request_duration_seconds_bucket{account="prod",endpoint="hostname_get",le="0.05"} 2"#,
        r#"cloudflare_aop_api_request_duration_seconds_bucket{account="prod",endpoint="hostname_get",le="5"} 2"#,
        r#"cloudflare_aop_api_request_duration_seconds_bucket{account="prod",endpoint="hostname_get",le="10"} 3"#,
    ] {
        assert!(has_line(&text, expected), "missing {expected}\n{text}");
    }
}

#[test]
fn rate_limit_remaining_appears_with_the_first_reading() {
    let metrics = metrics();
    let account = metrics.for_account("default");
    assert!(
        !metrics
            .render(&Snapshot::default())
            .contains("rate_limit_remaining")
    );
    account.rate_limit_remaining(1200);
    assert!(has_line(
        &metrics.render(&Snapshot::default()),
        r#"cloudflare_aop_rate_limit_remaining{account="default"} 1200"#
    ));
    account.rate_limit_remaining(1100);
    let text = metrics.render(&Snapshot::default());
    assert!(has_line(
        &text,
        r#"cloudflare_aop_rate_limit_remaining{account="default"} 1100"#
    ));
    assert_eq!(
        text.matches("# TYPE cloudflare_aop_rate_limit_remaining gauge")
            .count(),
        1
    );
}

#[test]
fn polls_alerts_and_notifications_are_recorded() {
    let metrics = metrics();
    metrics.poll_finished(PollOutcome::Success, Duration::from_millis(80));
    metrics.poll_finished(PollOutcome::Partial, Duration::from_secs(700));
    metrics.poll_skipped();
    metrics.alerts_firing(crate::alerts::Reason::Expiring, 3);
    metrics.sink_registered("slack");
    metrics.notification("slack", NotificationOutcome::Sent);
    metrics.notification("slack", NotificationOutcome::Sent);
    metrics.notification("webhook", NotificationOutcome::Dropped);
    metrics.queue_length("webhook", 5);

    let text = metrics.render(&Snapshot::default());
    for expected in [
        r#"cloudflare_aop_polls_total{outcome="success"} 1"#,
        r#"cloudflare_aop_polls_total{outcome="partial"} 1"#,
        r#"cloudflare_aop_polls_total{outcome="failure"} 0"#,
        r#"cloudflare_aop_polls_total{outcome="skipped"} 1"#,
        "cloudflare_aop_poll_duration_seconds_count 2",
        r#"cloudflare_aop_poll_duration_seconds_bucket{le="0.1"} 1"#,
        r#"cloudflare_aop_poll_duration_seconds_bucket{le="600"} 1"#,
        r#"cloudflare_aop_poll_duration_seconds_bucket{le="+Inf"} 2"#,
        r#"cloudflare_aop_alerts_firing{reason="expiring"} 3"#,
        r#"cloudflare_aop_alerts_firing{reason="stuck_pending"} 0"#,
        r#"cloudflare_aop_notifications_total{outcome="sent",sink="slack"} 2"#,
        r#"cloudflare_aop_notifications_total{outcome="failed",sink="slack"} 0"#,
        r#"cloudflare_aop_notifications_total{outcome="dropped",sink="slack"} 0"#,
        r#"cloudflare_aop_notifications_total{outcome="dropped",sink="webhook"} 1"#,
        r#"cloudflare_aop_notification_queue_length{sink="slack"} 0"#,
        r#"cloudflare_aop_notification_queue_length{sink="webhook"} 5"#,
    ] {
        assert!(has_line(&text, expected), "missing {expected}\n{text}");
    }
}

#[test]
fn two_instances_do_not_share_a_registry() {
    let first = metrics();
    let second = metrics();
    first.poll_skipped();
    assert!(has_line(
        &second.render(&Snapshot::default()),
        r#"cloudflare_aop_polls_total{outcome="skipped"} 0"#
    ));
}

/// Prints the render time at full scale, whole and in chunks; run with
/// `cargo test --release --lib metrics::tests::render_time -- --ignored --nocapture`.
#[test]
#[ignore = "timing: meaningful only in a release build"]
fn render_time() {
    fn median(mut times: Vec<std::time::Duration>) -> std::time::Duration {
        times.sort();
        times[times.len() / 2]
    }
    let snapshot = synthetic_snapshot(1000, 10, 2);
    let metrics = metrics();
    let mut whole = Vec::new();
    let mut chunked = Vec::new();
    let mut size = 0;
    for _ in 0..21 {
        let start = std::time::Instant::now();
        let text = metrics.render(&snapshot);
        whole.push(start.elapsed());
        size = text.len();
        drop(text);

        let start = std::time::Instant::now();
        let mut chunked_size = 0;
        // Dropping each chunk at once stands in for a body that sends it and frees it.
        metrics.render_chunks(&snapshot, RENDER_CHUNK_LEN, |chunk| {
            chunked_size += chunk.len();
        });
        chunked.push(start.elapsed());
        assert_eq!(chunked_size, size);
    }
    println!(
        "1000 zones / 10,000 hostnames / 2,000 certificates, {size} bytes: \
         render median {:?}, render_chunks median {:?}",
        median(whole),
        median(chunked),
    );
    // Peak RSS of the whole test process (snapshot, one whole output at a time): Linux only.
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let peak = status.lines().find(|line| line.starts_with("VmHWM"));
        println!("{}", peak.unwrap_or("VmHWM unknown"));
    }
}

/// Prints a small rendering for `promtool check metrics`; run with
/// `cargo test --lib metrics::tests::print_sample -- --ignored --nocapture`.
#[test]
#[ignore = "prints the output for promtool"]
fn print_sample() {
    let metrics = metrics();
    metrics.for_account("default").rate_limit_remaining(10);
    metrics.sink_registered("webhook");
    let mut snapshot = synthetic_snapshot(3, 4, 3);
    snapshot.zones.extend(small_snapshot().zones);
    print!("{}", metrics.render(&snapshot));
}
