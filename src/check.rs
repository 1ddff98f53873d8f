//! `check`: one poll cycle, a report of what needs attention, and an exit code for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::alerts::Reason;
use crate::alerts::evaluate::reason_of;
use crate::config::Settings;
use crate::daemon::{DaemonError, Exporter};
use crate::poller::{RefreshEstimate, TickScope};
use crate::state::{
    AssociationState, CertificateState, HostnameSource, HostnameState, Scope, Snapshot, Status,
};

/// Expiry closer than this is a finding when `alerts.expiry_warning` is not set.
pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// Exit codes of `check` (README, "Commands").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Nothing needs attention: exit 0.
    Healthy,
    /// Something is stuck, expiring, expired, disabled or failing a check: exit 1.
    Findings,
    /// At least one zone could not be polled because the API did not answer (or refused):
    /// exit 3.
    Unreachable,
    /// Every failing zone failed because Cloudflare answered with something that could not be
    /// decoded: the API is reachable, its answer is not readable. Also exit 3.
    Undecodable,
}

impl CheckStatus {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            CheckStatus::Healthy => 0,
            CheckStatus::Findings => 1,
            CheckStatus::Unreachable | CheckStatus::Undecodable => 3,
        }
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Warning,
}

/// One thing that needs attention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub zone_id: String,
    pub zone: String,
    /// `certificate <id>` or `hostname <name>`.
    pub object: String,
    /// What kind of problem, e.g. `deployment_timed_out`, `expired`, `association_disabled`.
    pub kind: String,
    pub detail: String,
}

/// The `check` result: zones polled, the whole inventory, and findings.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub status: CheckStatus,
    pub zones: Vec<ZoneResult>,
    /// Every certificate of every zone (as of its last successful poll).
    pub certificates: Vec<CertificateRow>,
    /// Every watched hostname of every zone.
    pub hostnames: Vec<HostnameRow>,
    pub findings: Vec<Finding>,
    /// What a full refresh costs at each credential's configured budget (the daemon's pace,
    /// not this check's: `check` fetches everything once, however long the budget makes it
    /// take).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refresh: Vec<RefreshEstimate>,
}

/// One certificate in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateRow {
    pub zone_id: String,
    pub zone: String,
    /// `hostname` (per-hostname) or `zone` (zone-level).
    pub scope: String,
    pub id: String,
    pub status: Option<String>,
    /// Since when the current status holds.
    pub since: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Whole days until expiry (negative once expired).
    pub days_left: Option<i64>,
    /// Every certificate check by name: `true` pass, `false` fail.
    pub checks: BTreeMap<String, bool>,
    /// Watched hostnames whose association names this certificate.
    pub hostnames: Vec<String>,
}

/// One watched hostname in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostnameRow {
    pub zone_id: String,
    pub zone: String,
    pub hostname: String,
    /// `configured` or `discovered`.
    pub source: String,
    /// `enabled`, `disabled`, `voided` or `absent`.
    pub association: String,
    pub status: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub cert_id: Option<String>,
    pub cert_status: Option<String>,
    pub cert_expires_at: Option<DateTime<Utc>>,
    /// Whole days until the serving certificate expires (negative once expired).
    pub days_left: Option<i64>,
}

/// How one zone's poll went.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneResult {
    pub zone_id: String,
    pub zone: String,
    pub poll_success: bool,
    pub certificates: usize,
    pub hostnames: usize,
    pub error: Option<String>,
    /// The failure's class (`decode`: Cloudflare answered, but not readably; `timeout`,
    /// `network`, `server_error`, `unauthorized`, …: it did not answer, or refused).
    pub error_reason: Option<String>,
}

/// Runs one cycle with `settings` (status history in memory only) and reports.
pub async fn run_check(settings: &Settings) -> Result<CheckReport, DaemonError> {
    let exporter = Exporter::new(settings, false)?;
    exporter.resolve_zones().await?;
    exporter.tick(TickScope::Everything).await;
    let snapshot = exporter.snapshot.load();
    let expiry_warning = settings
        .alerts
        .expiry_warning
        .unwrap_or(DEFAULT_EXPIRY_WARNING);
    let mut report = report(
        &snapshot,
        Utc::now(),
        expiry_warning,
        settings.alerts.pending_timeout,
    );
    report.refresh = RefreshEstimate::of(settings, Utc::now());
    Ok(report)
}

/// Builds the report of a snapshot.
pub fn report(
    snapshot: &Snapshot,
    now: DateTime<Utc>,
    expiry_warning: Duration,
    pending_timeout: Duration,
) -> CheckReport {
    let zones: Vec<ZoneResult> = snapshot
        .zones
        .values()
        .map(|zone| ZoneResult {
            zone_id: zone.zone_id.clone(),
            zone: zone.zone_name.clone(),
            poll_success: zone.poll_success,
            certificates: zone.certificates.len(),
            hostnames: zone.hostnames.len(),
            error: zone.last_error.clone(),
            error_reason: zone.last_error_reason.clone(),
        })
        .collect();
    let (certificates, hostnames) = inventory(snapshot, now);
    let mut findings = findings(snapshot, now, expiry_warning, pending_timeout);
    findings.sort_by(|a, b| {
        (a.severity, &a.zone, &a.object, &a.kind).cmp(&(b.severity, &b.zone, &b.object, &b.kind))
    });
    let failed: Vec<&ZoneResult> = zones.iter().filter(|zone| !zone.poll_success).collect();
    let status = if failed
        .iter()
        .any(|zone| zone.error_reason.as_deref() != Some("decode"))
    {
        CheckStatus::Unreachable
    } else if !failed.is_empty() {
        CheckStatus::Undecodable
    } else if findings.is_empty() {
        CheckStatus::Healthy
    } else {
        CheckStatus::Findings
    };
    CheckReport {
        status,
        zones,
        certificates,
        hostnames,
        findings,
        refresh: Vec::new(),
    }
}

/// Whole days from `now` to `at`, rounded towards the past (an expiry in 36 hours: 1 day left).
fn days_until(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<i64> {
    at.map(|at| (at - now).num_seconds().div_euclid(86_400))
}

/// Every certificate and hostname of the snapshot, zone by zone.
fn inventory(snapshot: &Snapshot, now: DateTime<Utc>) -> (Vec<CertificateRow>, Vec<HostnameRow>) {
    let mut certificates = Vec::new();
    let mut hostnames = Vec::new();
    for zone in snapshot.zones.values() {
        for ((scope, id), certificate) in &zone.certificates {
            let served: Vec<String> = zone
                .hostnames
                .values()
                .filter(|hostname| {
                    *scope == Scope::Hostname && hostname.cert_id.as_deref() == Some(id.as_str())
                })
                .map(|hostname| hostname.hostname.clone())
                .collect();
            certificates.push(CertificateRow {
                zone_id: zone.zone_id.clone(),
                zone: zone.zone_name.clone(),
                scope: scope.as_str().to_owned(),
                id: id.clone(),
                status: certificate.status.map(|status| status.as_str().to_owned()),
                since: certificate.status_since,
                expires_at: certificate.expires_at(),
                days_left: days_until(certificate.expires_at(), now),
                checks: certificate
                    .checks
                    .iter()
                    .map(|(check, passed)| (check.as_str().to_owned(), *passed))
                    .collect(),
                hostnames: served,
            });
        }
        for hostname in zone.hostnames.values() {
            hostnames.push(HostnameRow {
                zone_id: zone.zone_id.clone(),
                zone: zone.zone_name.clone(),
                hostname: hostname.hostname.clone(),
                source: hostname.source.as_str().to_owned(),
                association: hostname.association.as_str().to_owned(),
                status: hostname.status.map(|status| status.as_str().to_owned()),
                since: hostname.status_since,
                cert_id: hostname.cert_id.clone(),
                cert_status: hostname
                    .cert_status
                    .map(|status| status.as_str().to_owned()),
                cert_expires_at: hostname.cert_expires_on,
                days_left: days_until(hostname.cert_expires_on, now),
            });
        }
    }
    (certificates, hostnames)
}

/// Everything in the snapshot that needs attention.
pub fn findings(
    snapshot: &Snapshot,
    now: DateTime<Utc>,
    expiry_warning: Duration,
    pending_timeout: Duration,
) -> Vec<Finding> {
    let limits = Limits {
        now,
        expiry_warning: chrono::Duration::from_std(expiry_warning)
            .unwrap_or(chrono::TimeDelta::MAX),
        pending_timeout: chrono::Duration::from_std(pending_timeout)
            .unwrap_or(chrono::TimeDelta::MAX),
    };
    let mut found = Vec::new();
    for zone in snapshot.zones.values() {
        let mut add = |object: &str, (severity, kind, detail): Problem| {
            found.push(Finding {
                severity,
                zone_id: zone.zone_id.clone(),
                zone: zone.zone_name.clone(),
                object: object.to_owned(),
                kind,
                detail,
            });
        };
        for certificate in zone.certificates.values() {
            let object = format!("certificate {}", certificate.id);
            for problem in certificate_problems(certificate, &limits) {
                add(&object, problem);
            }
        }
        for hostname in zone.hostnames.values() {
            let object = format!("hostname {}", hostname.hostname);
            for problem in hostname_problems(hostname, &limits) {
                add(&object, problem);
            }
        }
    }
    found
}

/// Severity, kind and detail of one finding.
type Problem = (Severity, String, String);

struct Limits {
    now: DateTime<Utc>,
    expiry_warning: chrono::Duration,
    pending_timeout: chrono::Duration,
}

/// A timed-out status, or a pending one older than the pending timeout: the same rule the
/// daemon's own alerts use ([`reason_of`]).
fn status_problem(
    status: Option<Status>,
    since: Option<DateTime<Utc>>,
    what: &str,
    limits: &Limits,
) -> Option<Problem> {
    let status = status?;
    match reason_of(status, since, limits.now, limits.pending_timeout)? {
        Reason::StuckPending => Some((
            Severity::Warning,
            Reason::StuckPending.as_str().to_owned(),
            format!("{what} status {status} since {}", fmt_time(since)),
        )),
        reason => Some((
            Severity::Critical,
            reason.as_str().to_owned(),
            format!("{what} status is {status}"),
        )),
    }
}

fn certificate_problems(certificate: &CertificateState, limits: &Limits) -> Vec<Problem> {
    let what = format!("{} certificate", certificate.scope);
    let mut problems: Vec<Problem> =
        status_problem(certificate.status, certificate.status_since, &what, limits)
            .into_iter()
            .collect();
    if let Some(expiry) = certificate.expires_at() {
        let left = expiry - limits.now;
        if expiry <= limits.now {
            problems.push((
                Severity::Critical,
                "expired".to_owned(),
                format!("expired on {}", fmt_time(Some(expiry))),
            ));
        } else if left <= limits.expiry_warning {
            problems.push((
                Severity::Warning,
                "expiring".to_owned(),
                format!(
                    "expires on {} ({} days left)",
                    fmt_time(Some(expiry)),
                    left.num_days()
                ),
            ));
        }
    }
    problems.extend(certificate.failing_checks().map(|check| {
        (
            Severity::Warning,
            "check_failed".to_owned(),
            format!("certificate check {} fails", check.as_str()),
        )
    }));
    problems
}

fn hostname_problems(hostname: &HostnameState, limits: &Limits) -> Vec<Problem> {
    let association = match hostname.association {
        AssociationState::Enabled => None,
        AssociationState::Disabled => Some("per-hostname AOP is disabled"),
        AssociationState::Voided => Some("the association was invalidated (enabled: null)"),
        // A discovered name without an association simply does not use per-hostname AOP.
        AssociationState::Absent if hostname.source == HostnameSource::Discovered => None,
        AssociationState::Absent => Some("no per-hostname AOP association (404)"),
    };
    association
        .map(|detail| {
            (
                Severity::Warning,
                format!("association_{}", hostname.association),
                detail.to_owned(),
            )
        })
        .into_iter()
        .chain(status_problem(
            hostname.status,
            hostname.status_since,
            "association",
            limits,
        ))
        .chain(status_problem(
            hostname.cert_status,
            hostname.cert_status_since,
            "certificate",
            limits,
        ))
        .collect()
}

fn fmt_time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "unknown".to_owned(),
        |at| at.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// Rows as columns padded to their widest cell (the last column unpadded), under a header.
fn aligned(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|title| title.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|title| (*title).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if index + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

fn days_text(days: Option<i64>) -> String {
    days.map_or_else(|| "-".to_owned(), |days| days.to_string())
}

/// The report as aligned text tables: zones, certificates, hostnames, findings.
pub fn render_table(report: &CheckReport) -> String {
    let mut out = String::new();
    render_zones(&mut out, report);
    render_certificates(&mut out, report);
    render_hostnames(&mut out, report);
    render_findings(&mut out, report);
    for refresh in &report.refresh {
        let _ = writeln!(out, "\nRefresh: {refresh}");
        if refresh.exceeds_tick() {
            let _ = writeln!(
                out,
                "  more than one tick: each tick refreshes part of the account, oldest data first"
            );
        }
    }
    let _ = writeln!(
        out,
        "\nResult: {} (exit {})",
        match report.status {
            CheckStatus::Healthy => "healthy",
            CheckStatus::Findings => "findings",
            CheckStatus::Unreachable => "Cloudflare API unreachable for some zones",
            CheckStatus::Undecodable =>
                "Cloudflare answered, but some answers could not be decoded (see the errors above)",
        },
        report.status.exit_code()
    );
    out
}

/// One aligned table: `header`, then `row` of each item.
fn table<T>(out: &mut String, header: &[&str], items: &[T], row: impl Fn(&T) -> Vec<String>) {
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    aligned(out, header, &rows);
}

fn render_zones(out: &mut String, report: &CheckReport) {
    table(
        out,
        &["ZONE", "ZONE ID", "POLL", "CERTS", "HOSTNAMES", "ERROR"],
        &report.zones,
        |zone| {
            vec![
                zone.zone.clone(),
                zone.zone_id.clone(),
                if zone.poll_success { "ok" } else { "FAIL" }.to_owned(),
                zone.certificates.to_string(),
                zone.hostnames.to_string(),
                or_dash(zone.error.as_deref()),
            ]
        },
    );
}

/// A blank line and a [`table`]; nothing at all when there are no items.
fn section<T>(out: &mut String, header: &[&str], items: &[T], row: impl Fn(&T) -> Vec<String>) {
    if !items.is_empty() {
        out.push('\n');
        table(out, header, items, row);
    }
}

fn render_certificates(out: &mut String, report: &CheckReport) {
    let header = [
        "ZONE",
        "SCOPE",
        "CERTIFICATE",
        "STATUS",
        "SINCE",
        "EXPIRES",
        "DAYS",
        "CHECKS",
        "HOSTNAMES",
    ];
    section(out, &header, &report.certificates, |certificate| {
        let failing: Vec<&str> = certificate
            .checks
            .iter()
            .filter(|(_, passed)| !**passed)
            .map(|(check, _)| check.as_str())
            .collect();
        vec![
            certificate.zone.clone(),
            certificate.scope.clone(),
            certificate.id.clone(),
            or_dash(certificate.status.as_deref()),
            fmt_time(certificate.since),
            fmt_time(certificate.expires_at),
            days_text(certificate.days_left),
            if failing.is_empty() {
                "ok".to_owned()
            } else {
                failing.join(",")
            },
            certificate.hostnames.join(","),
        ]
    });
}

fn render_hostnames(out: &mut String, report: &CheckReport) {
    let header = [
        "ZONE",
        "HOSTNAME",
        "SOURCE",
        "ASSOCIATION",
        "STATUS",
        "CERTIFICATE",
        "CERT STATUS",
        "DAYS",
    ];
    section(out, &header, &report.hostnames, |hostname| {
        vec![
            hostname.zone.clone(),
            hostname.hostname.clone(),
            hostname.source.clone(),
            hostname.association.clone(),
            or_dash(hostname.status.as_deref()),
            or_dash(hostname.cert_id.as_deref()),
            or_dash(hostname.cert_status.as_deref()),
            days_text(hostname.days_left),
        ]
    });
}

fn render_findings(out: &mut String, report: &CheckReport) {
    out.push('\n');
    if report.findings.is_empty() {
        out.push_str("No findings.\n");
        return;
    }
    let header = ["SEVERITY", "ZONE", "OBJECT", "KIND", "DETAIL"];
    table(out, &header, &report.findings, |finding| {
        let severity = match finding.severity {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        };
        vec![
            severity.to_owned(),
            finding.zone.clone(),
            finding.object.clone(),
            finding.kind.clone(),
            finding.detail.clone(),
        ]
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_whatever_the_width_of_their_cells() {
        let mut out = String::new();
        aligned(
            &mut out,
            &["ZONE", "POLL", "ERROR"],
            &[
                vec![
                    "0123456789abcdef0123456789abcdef".to_owned(),
                    "ok".to_owned(),
                    "-".to_owned(),
                ],
                vec![
                    "a.example".to_owned(),
                    "FAIL".to_owned(),
                    "timeout".to_owned(),
                ],
            ],
        );
        assert_eq!(
            out,
            "ZONE                              POLL  ERROR\n\
             0123456789abcdef0123456789abcdef  ok    -\n\
             a.example                         FAIL  timeout\n"
        );
    }

    #[test]
    fn days_left_round_towards_the_past() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let at = |seconds| Some(now + chrono::TimeDelta::seconds(seconds));
        assert_eq!(days_until(at(36 * 3600), now), Some(1));
        assert_eq!(days_until(at(-3600), now), Some(-1));
        assert_eq!(days_until(None, now), None);
    }
}
