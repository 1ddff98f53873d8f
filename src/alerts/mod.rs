//! The daemon's own alerts (README, "Alerts"): what is stuck, and telling someone about it.
//!
//! Data flows one way through the files of this module:
//!
//! - [`evaluate()`] (pure): previous alert state + new snapshot + now → new state and transitions
//!   (firing, repeat, resolved);
//! - [`outbox`]: the firing state and every undelivered notification, persisted atomically in
//!   `[state] dir` so a restart neither forgets, re-announces nor loses anything;
//! - [`delivery`]: one queue and one worker per sink, with retries, backoff and a max age;
//! - [`message`]: the human text (summary, description, remediation) every sink shares;
//! - [`slack`], [`webhook`], [`alertmanager`]: one request body format each;
//! - [`alerter`]: the wiring the daemon calls after each completed poll cycle.
//!
//! Sinks are known by their configured *name* everywhere outside [`delivery`]: URLs and HMAC
//! secrets never reach the state file, a log line or a metric.

pub mod alerter;
pub mod alertmanager;
pub mod delivery;
pub mod evaluate;
pub mod message;
pub mod outbox;
pub mod slack;
pub mod webhook;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::state::{Scope, Status};

pub use alerter::{AlertError, Alerter};
pub use evaluate::{Evaluation, evaluate};

/// The runbook every alert links to (the daemon's and the Prometheus rules' alike), one
/// section per alert name.
pub const RUNBOOK_URL: &str =
    "https://github.com/cloudflare-aop-exporter/cloudflare-aop-exporter/blob/main/docs/runbook.md";

/// Why an alert fires: the `reason` label (of `alerts_firing` and of every sink's alert).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::Display, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum Reason {
    /// A certificate, association or association's `cert_status` is `deployment_timed_out`.
    DeploymentTimedOut,
    /// The same, `deletion_timed_out`.
    DeletionTimedOut,
    /// `initializing` / `pending_*` for longer than `alerts.pending_timeout`.
    StuckPending,
    /// A certificate serving a monitored hostname expires within `alerts.expiry_warning`.
    Expiring,
}

impl Reason {
    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The `alertname` label: Alertmanager routes and silences on it.
    pub fn alert_name(self) -> &'static str {
        match self {
            Reason::DeploymentTimedOut => "CloudflareAOPDeploymentTimedOut",
            Reason::DeletionTimedOut => "CloudflareAOPDeletionTimedOut",
            Reason::StuckPending => "CloudflareAOPStuckPending",
            Reason::Expiring => "CloudflareAOPCertificateExpiring",
        }
    }

    /// The `runbook_url` annotation: this alert's section of `docs/runbook.md`.
    pub fn runbook_url(self) -> String {
        format!("{RUNBOOK_URL}#{}", self.alert_name().to_ascii_lowercase())
    }

    /// The `severity` label: a timed-out deployment takes a site down; the rest can wait for
    /// working hours.
    pub fn severity(self) -> &'static str {
        match self {
            Reason::DeploymentTimedOut | Reason::DeletionTimedOut => "critical",
            Reason::StuckPending | Reason::Expiring => "warning",
        }
    }

    /// The reason a status fires on the first poll that sees it, if any.
    pub fn of_timed_out(status: Status) -> Option<Reason> {
        match status {
            Status::DeploymentTimedOut => Some(Reason::DeploymentTimedOut),
            Status::DeletionTimedOut => Some(Reason::DeletionTimedOut),
            _ => None,
        }
    }
}

/// What became of one notification: the `outcome` label of `notifications_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::EnumIter)]
pub enum NotificationOutcome {
    /// The sink accepted it.
    #[strum(serialize = "sent")]
    Sent,
    /// Delivery failed (it may be retried).
    #[strum(serialize = "failed")]
    Failed,
    /// Given up on (queue full or retries exhausted).
    #[strum(serialize = "dropped")]
    Dropped,
}

impl NotificationOutcome {
    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where the alerter reports what it does (the metrics, in the daemon): alerts firing,
/// notifications and queue lengths, per sink name.
pub trait AlertObserver: Send + Sync + fmt::Debug {
    /// `firing` alerts with `reason` are firing now.
    fn alerts_firing(&self, reason: Reason, firing: usize);
    /// A sink's counters start at 0, before its first notification.
    fn sink_registered(&self, sink: &str);
    /// One notification to `sink` ended with `outcome`.
    fn notification(&self, sink: &str, outcome: NotificationOutcome);
    /// `length` notifications wait in `sink`'s queue.
    fn queue_length(&self, sink: &str, length: usize);
}

/// An observer that records nothing (tests, one-shot uses).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopAlertObserver;

impl AlertObserver for NoopAlertObserver {
    fn alerts_firing(&self, _reason: Reason, _firing: usize) {}
    fn sink_registered(&self, _sink: &str) {}
    fn notification(&self, _sink: &str, _outcome: NotificationOutcome) {}
    fn queue_length(&self, _sink: &str, _length: usize) {}
}

/// What an alert is about, within its zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlertObject {
    /// An uploaded AOP certificate (per-hostname or zone-level).
    Certificate {
        /// Which list it is in.
        scope: Scope,
        /// Its id.
        cert_id: String,
    },
    /// A monitored hostname's association (its `status` and its `cert_status`).
    Hostname {
        /// The hostname.
        hostname: String,
    },
}

impl AlertObject {
    /// The canonical form inside a fingerprint key: never changes for a given object.
    fn canonical(&self) -> String {
        match self {
            AlertObject::Certificate { scope, cert_id } => format!("certificate/{scope}/{cert_id}"),
            AlertObject::Hostname { hostname } => format!("hostname/{hostname}"),
        }
    }
}

impl fmt::Display for AlertObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlertObject::Certificate {
                scope: Scope::Hostname,
                cert_id,
            } => write!(f, "certificate {cert_id}"),
            AlertObject::Certificate {
                scope: Scope::Zone,
                cert_id,
            } => write!(f, "zone-level certificate {cert_id}"),
            AlertObject::Hostname { hostname } => write!(f, "hostname {hostname}"),
        }
    }
}

/// The stable identity of an alert: hex SHA-256 of `zone_id`, object and reason, 16 characters.
///
/// Equal across restarts, replicas and versions, so the state file, Alertmanager and receivers
/// can deduplicate on it.
pub fn fingerprint(zone_id: &str, object: &AlertObject, reason: Reason) -> String {
    let key = format!("{zone_id}\n{}\n{}", object.canonical(), reason.as_str());
    let digest = Sha256::digest(key.as_bytes());
    let mut text = hex::encode(digest);
    text.truncate(16);
    text
}

/// One alert: identity, the facts that explain it, and its notification bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// See [`fingerprint`].
    pub fingerprint: String,
    /// Why it fires.
    pub reason: Reason,
    /// The zone's id.
    pub zone_id: String,
    /// The `zone` label: the configured name, else the id.
    pub zone: String,
    /// What it is about.
    pub object: AlertObject,
    /// The stuck status: the certificate's, or the association's `status` (hostname alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Hostname alerts: the association's `cert_status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_status: Option<Status>,
    /// The certificate: the object itself, or the one the hostname's association names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_id: Option<String>,
    /// Since when the status that fires it holds (the persisted status-since time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// When the certificate involved expires, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Monitored hostnames served by the certificate (certificate alerts), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// When this daemon first saw it firing (kept across restarts): Alertmanager's `startsAt`.
    pub started_at: DateTime<Utc>,
    /// When a firing or repeat notification was last queued.
    pub last_notified_at: DateTime<Utc>,
}

/// The alerts firing now, by fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertState {
    /// Keyed by [`Alert::fingerprint`].
    pub firing: BTreeMap<String, Alert>,
}

impl AlertState {
    /// How many alerts with `reason` fire.
    pub fn count(&self, reason: Reason) -> usize {
        self.firing
            .values()
            .filter(|alert| alert.reason == reason)
            .count()
    }
}

/// What happened to an alert in one evaluation, and what a notification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// It started firing.
    Firing,
    /// Still firing, and `repeat_interval` passed since the last notification.
    Repeat,
    /// Its condition cleared.
    Resolved,
}

impl TransitionKind {
    /// `firing` or `resolved`: the status receivers know (a repeat is still firing).
    pub fn status(self) -> &'static str {
        match self {
            TransitionKind::Firing | TransitionKind::Repeat => "firing",
            TransitionKind::Resolved => "resolved",
        }
    }
}

/// An alert that changed, as of the evaluation that changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// What happened.
    pub kind: TransitionKind,
    /// The alert (for `Resolved`, as it last fired).
    pub alert: Alert,
    /// The evaluation's time (for `Resolved`, the end of the alert).
    pub at: DateTime<Utc>,
}

/// Fixtures the sinks' tests share.
#[cfg(test)]
pub(crate) mod fixtures {
    use chrono::{DateTime, TimeZone, Utc};

    use super::outbox::Notification;
    use super::{Alert, AlertObject, Reason, TransitionKind, fingerprint};

    /// `seconds` after a fixed instant (2027-01-15).
    pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    /// Notification 1 of an alert on `object` in zone `z1` (named `zone`), firing for `reason`
    /// since `at(0)`; every optional fact unset.
    pub(crate) fn notification(
        kind: TransitionKind,
        object: AlertObject,
        reason: Reason,
        zone: &str,
    ) -> Notification {
        Notification {
            id: 1,
            kind,
            alert: Alert {
                fingerprint: fingerprint("z1", &object, reason),
                reason,
                zone_id: "z1".into(),
                zone: zone.into(),
                object,
                status: None,
                cert_status: None,
                cert_id: None,
                since: None,
                expires_at: None,
                hostnames: Vec::new(),
                started_at: at(0),
                last_notified_at: at(0),
            },
            created_at: at(0),
            ends_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator as _;

    use super::*;

    #[test]
    fn fingerprints_are_stable_short_hex_and_distinct_per_key() {
        let certificate = AlertObject::Certificate {
            scope: Scope::Hostname,
            cert_id: "c1".into(),
        };
        let first = fingerprint("z1", &certificate, Reason::DeploymentTimedOut);
        assert_eq!(first.len(), 16);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            first,
            fingerprint("z1", &certificate, Reason::DeploymentTimedOut)
        );
        // Pinned: the state file and Alertmanager dedup rely on it never changing.
        let key = "z1\ncertificate/hostname/c1\ndeployment_timed_out";
        assert_eq!(first, hex::encode(Sha256::digest(key.as_bytes()))[..16]);
        assert_ne!(
            first,
            fingerprint("z1", &certificate, Reason::DeletionTimedOut)
        );
        assert_ne!(
            first,
            fingerprint("z2", &certificate, Reason::DeploymentTimedOut)
        );
        let zone_level = AlertObject::Certificate {
            scope: Scope::Zone,
            cert_id: "c1".into(),
        };
        assert_ne!(
            first,
            fingerprint("z1", &zone_level, Reason::DeploymentTimedOut)
        );
    }

    #[test]
    fn reason_labels_are_spelled_as_documented() {
        let labels: Vec<&str> = Reason::iter().map(Reason::as_str).collect();
        assert_eq!(
            labels.join(" "),
            "deployment_timed_out deletion_timed_out stuck_pending expiring"
        );
    }
}
