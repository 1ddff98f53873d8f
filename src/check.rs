//! `check`: one poll cycle, a report of what needs attention, and an exit code for scripts.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::alerts::Reason;
use crate::alerts::evaluate::reason_of;
use crate::config::Settings;
use crate::daemon::{DaemonError, Exporter};
use crate::state::{
    AssociationState, CertificateState, HostnameSource, HostnameState, Snapshot, Status,
};

/// Expiry closer than this is a finding when `alerts.expiry_warning` is not set.
pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// Exit codes of `check` (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Nothing needs attention: exit 0.
    Healthy,
    /// Something is stuck, expiring, expired, disabled or failing a check: exit 1.
    Findings,
    /// At least one zone could not be polled: exit 3.
    Unreachable,
}

impl CheckStatus {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            CheckStatus::Healthy => 0,
            CheckStatus::Findings => 1,
            CheckStatus::Unreachable => 3,
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

/// The `check` result: zones polled, and findings.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub status: CheckStatus,
    pub zones: Vec<ZoneResult>,
    pub findings: Vec<Finding>,
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
}

/// Runs one cycle with `settings` (status history in memory only) and reports.
pub async fn run_check(settings: &Settings) -> Result<CheckReport, DaemonError> {
    let exporter = Exporter::new(settings, false)?;
    exporter.cycle().await;
    let snapshot = exporter.snapshot.load();
    let expiry_warning = settings
        .alerts
        .expiry_warning
        .unwrap_or(DEFAULT_EXPIRY_WARNING);
    Ok(report(
        &snapshot,
        Utc::now(),
        expiry_warning,
        settings.alerts.pending_timeout,
    ))
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
        })
        .collect();
    let mut findings = findings(snapshot, now, expiry_warning, pending_timeout);
    findings.sort_by(|a, b| {
        (a.severity, &a.zone, &a.object, &a.kind).cmp(&(b.severity, &b.zone, &b.object, &b.kind))
    });
    let status = if zones.iter().any(|zone| !zone.poll_success) {
        CheckStatus::Unreachable
    } else if findings.is_empty() {
        CheckStatus::Healthy
    } else {
        CheckStatus::Findings
    };
    CheckReport {
        status,
        zones,
        findings,
    }
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

/// The report as an aligned text table.
pub fn render_table(report: &CheckReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "ZONE                           POLL  CERTS  HOSTNAMES");
    for zone in &report.zones {
        let _ = writeln!(
            out,
            "{:<30} {:<5} {:>5}  {:>9}{}",
            zone.zone,
            if zone.poll_success { "ok" } else { "FAIL" },
            zone.certificates,
            zone.hostnames,
            zone.error
                .as_deref()
                .map(|e| format!("  {e}"))
                .unwrap_or_default()
        );
    }
    out.push('\n');
    if report.findings.is_empty() {
        out.push_str("No findings.\n");
    } else {
        let _ = writeln!(
            out,
            "SEVERITY  ZONE                 OBJECT                                         KIND                  DETAIL"
        );
        for finding in &report.findings {
            let severity = match finding.severity {
                Severity::Critical => "critical",
                Severity::Warning => "warning",
            };
            let _ = writeln!(
                out,
                "{severity:<9} {:<20} {:<46} {:<21} {}",
                finding.zone, finding.object, finding.kind, finding.detail
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
        },
        report.status.exit_code()
    );
    out
}
