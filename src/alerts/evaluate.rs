//! The alert rules of the README's "Alerts", as one pure function: no clock, no I/O, no randomness.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::{Alert, AlertObject, AlertState, Reason, Transition, TransitionKind, fingerprint};
use crate::config::AlertSettings;
use crate::state::{AssociationState, Scope, Snapshot, Status, ZoneSnapshot};

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The alerts firing after it.
    pub state: AlertState,
    /// What changed: new alerts, due repeats, resolved alerts.
    pub transitions: Vec<Transition>,
}

/// Evaluates the rules on `snapshot` at `now`, given what fired before.
///
/// - `deployment_timed_out` / `deletion_timed_out`: a certificate's status, a hostname
///   association's `status` or its `cert_status`, on the first evaluation that sees it;
/// - `stuck_pending`: one of those `initializing` / `pending_*` for longer than
///   `pending_timeout`, measured from the snapshot's persisted status-since time;
/// - `expiring` (only with `expiry_warning`): a certificate serving a monitored hostname (an
///   enabled association) expires within it.
///
/// One alert per (zone, object, reason). A new one is a `Firing` transition; one still firing
/// `repeat_interval` after its last notification is a `Repeat`; one whose condition cleared is
/// `Resolved` (always reported: whether a sink is told depends on the sink and `send_resolved`).
/// The alerts of a zone whose last poll failed are carried over untouched: nothing is known,
/// so nothing fires, repeats or resolves there. Alerts of zones no longer watched resolve.
pub fn evaluate(
    previous: &AlertState,
    snapshot: &Snapshot,
    now: DateTime<Utc>,
    settings: &AlertSettings,
) -> Evaluation {
    let repeat_interval = delta(settings.repeat_interval);
    let mut state = AlertState::default();
    let mut transitions = Vec::new();

    for (fingerprint, alert) in &previous.firing {
        let zone_polled = snapshot
            .zones
            .get(&alert.zone_id)
            .map(|zone| zone.poll_success);
        if zone_polled == Some(false) {
            state.firing.insert(fingerprint.clone(), alert.clone());
        }
    }

    for zone in snapshot.zones.values().filter(|zone| zone.poll_success) {
        for condition in conditions(zone, now, settings) {
            let fingerprint = fingerprint(&zone.zone_id, &condition.object, condition.reason);
            let (started_at, last_notified_at, kind) = match previous.firing.get(&fingerprint) {
                Some(before) if now - before.last_notified_at >= repeat_interval => {
                    (before.started_at, now, Some(TransitionKind::Repeat))
                }
                Some(before) => (before.started_at, before.last_notified_at, None),
                None => (now, now, Some(TransitionKind::Firing)),
            };
            let alert = Alert {
                fingerprint: fingerprint.clone(),
                reason: condition.reason,
                zone_id: zone.zone_id.clone(),
                zone: zone.zone_name.clone(),
                object: condition.object,
                status: condition.status,
                cert_status: condition.cert_status,
                cert_id: condition.cert_id,
                since: condition.since,
                expires_at: condition.expires_at,
                hostnames: condition.hostnames,
                started_at,
                last_notified_at,
            };
            if let Some(kind) = kind {
                transitions.push(Transition {
                    kind,
                    alert: alert.clone(),
                    at: now,
                });
            }
            state.firing.insert(fingerprint, alert);
        }
    }

    for (fingerprint, alert) in &previous.firing {
        if !state.firing.contains_key(fingerprint) {
            transitions.push(Transition {
                kind: TransitionKind::Resolved,
                alert: alert.clone(),
                at: now,
            });
        }
    }
    Evaluation { state, transitions }
}

/// A rule that holds for one object of a zone.
struct Condition {
    reason: Reason,
    object: AlertObject,
    status: Option<Status>,
    cert_status: Option<Status>,
    cert_id: Option<String>,
    since: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    hostnames: Vec<String>,
}

/// The reason a status fires (given since when it holds), if any.
pub fn reason_of(
    status: Status,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    pending_timeout: TimeDelta,
) -> Option<Reason> {
    if let Some(reason) = Reason::of_timed_out(status) {
        return Some(reason);
    }
    // Without a since time the duration is unknown; the poller records one for every status.
    let pending_too_long = since.is_some_and(|since| now - since > pending_timeout);
    (status.is_pending() && pending_too_long).then_some(Reason::StuckPending)
}

fn conditions(zone: &ZoneSnapshot, now: DateTime<Utc>, settings: &AlertSettings) -> Vec<Condition> {
    let pending_timeout = delta(settings.pending_timeout);
    let mut found = Vec::new();

    for ((scope, cert_id), certificate) in &zone.certificates {
        let Some(status) = certificate.status else {
            continue;
        };
        let Some(reason) = reason_of(status, certificate.status_since, now, pending_timeout) else {
            continue;
        };
        found.push(Condition {
            reason,
            object: AlertObject::Certificate {
                scope: *scope,
                cert_id: cert_id.clone(),
            },
            status: Some(status),
            cert_status: None,
            cert_id: Some(cert_id.clone()),
            since: certificate.status_since,
            expires_at: certificate.expires_at(),
            hostnames: served_hostnames(zone, *scope, cert_id),
        });
    }

    for hostname in zone.hostnames.values() {
        // Status and cert_status may fire the same reason: one alert, since the earlier start.
        let mut reasons: BTreeMap<Reason, Option<DateTime<Utc>>> = BTreeMap::new();
        let fields = [
            (hostname.status, hostname.status_since),
            (hostname.cert_status, hostname.cert_status_since),
        ];
        for (status, since) in fields {
            let Some(status) = status else { continue };
            if let Some(reason) = reason_of(status, since, now, pending_timeout) {
                let earliest = reasons.entry(reason).or_insert(since);
                *earliest = match (*earliest, since) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        for (reason, since) in reasons {
            found.push(Condition {
                reason,
                object: AlertObject::Hostname {
                    hostname: hostname.hostname.clone(),
                },
                status: hostname.status,
                cert_status: hostname.cert_status,
                cert_id: hostname.cert_id.clone(),
                since,
                expires_at: hostname.cert_expires_on,
                hostnames: Vec::new(),
            });
        }
    }

    if let Some(warning) = settings.expiry_warning {
        found.extend(expiring(zone, now, delta(warning)));
    }
    found
}

/// Certificates serving a monitored hostname (an enabled association) that expire within
/// `warning`: one condition per certificate, naming the hostnames it serves.
fn expiring(zone: &ZoneSnapshot, now: DateTime<Utc>, warning: TimeDelta) -> Vec<Condition> {
    let mut serving: BTreeMap<&str, (Option<DateTime<Utc>>, Vec<String>)> = BTreeMap::new();
    for hostname in zone.hostnames.values() {
        let Some(cert_id) = hostname.cert_id.as_deref() else {
            continue;
        };
        if hostname.association != AssociationState::Enabled {
            continue;
        }
        let listed_expiry = zone
            .certificates
            .get(&(Scope::Hostname, cert_id.to_owned()))
            .and_then(crate::state::CertificateState::expires_at);
        let entry = serving.entry(cert_id).or_default();
        entry.0 = entry.0.or(listed_expiry).or(hostname.cert_expires_on);
        entry.1.push(hostname.hostname.clone());
    }
    serving
        .into_iter()
        .filter_map(|(cert_id, (expires_at, hostnames))| {
            let expires_at = expires_at?;
            if expires_at - now > warning {
                return None;
            }
            let status = zone
                .certificates
                .get(&(Scope::Hostname, cert_id.to_owned()))
                .and_then(|certificate| certificate.status);
            Some(Condition {
                reason: Reason::Expiring,
                object: AlertObject::Certificate {
                    scope: Scope::Hostname,
                    cert_id: cert_id.to_owned(),
                },
                status,
                cert_status: None,
                cert_id: Some(cert_id.to_owned()),
                since: None,
                expires_at: Some(expires_at),
                hostnames,
            })
        })
        .collect()
}

/// Monitored hostnames whose association names a per-hostname certificate, sorted.
fn served_hostnames(zone: &ZoneSnapshot, scope: Scope, cert_id: &str) -> Vec<String> {
    if scope != Scope::Hostname {
        return Vec::new();
    }
    zone.hostnames
        .values()
        .filter(|hostname| hostname.cert_id.as_deref() == Some(cert_id))
        .map(|hostname| hostname.hostname.clone())
        .collect()
}

/// A config duration as a chrono delta (saturating: a huge setting means "never").
fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{CertificateState, HostnameState};
    use chrono::TimeZone;

    const ZONE: &str = "z1";

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + minutes * 60, 0).unwrap()
    }

    fn settings() -> AlertSettings {
        AlertSettings {
            pending_timeout: Duration::from_secs(30 * 60),
            repeat_interval: Duration::from_secs(4 * 3600),
            send_resolved: true,
            expiry_warning: None,
            sinks: Vec::new(),
        }
    }

    fn certificate(id: &str, status: Status, since: DateTime<Utc>) -> CertificateState {
        CertificateState {
            status: Some(status),
            status_since: Some(since),
            api_expires_on: Some(at(60 * 24 * 300)),
            ..CertificateState::new(Scope::Hostname, id)
        }
    }

    fn hostname(name: &str, cert_id: &str, status: Status, cert_status: Status) -> HostnameState {
        HostnameState {
            status: Some(status),
            status_since: Some(at(0)),
            cert_id: Some(cert_id.into()),
            cert_status: Some(cert_status),
            cert_status_since: Some(at(0)),
            ..HostnameState::new(name, AssociationState::Enabled)
        }
    }

    fn snapshot(
        certificates: Vec<CertificateState>,
        hostnames: Vec<HostnameState>,
        poll_success: bool,
    ) -> Snapshot {
        let mut zone = ZoneSnapshot::new(ZONE, "example.com");
        zone.poll_success = poll_success;
        for certificate in certificates {
            zone.certificates
                .insert((certificate.scope, certificate.id.clone()), certificate);
        }
        for hostname in hostnames {
            zone.hostnames.insert(hostname.hostname.clone(), hostname);
        }
        let mut snapshot = Snapshot::default();
        snapshot
            .zones
            .insert(ZONE.into(), std::sync::Arc::new(zone));
        snapshot
    }

    /// A zone (polled fine) with one certificate and no hostnames.
    fn one_certificate(id: &str, status: Status, since: DateTime<Utc>) -> Snapshot {
        snapshot(vec![certificate(id, status, since)], vec![], true)
    }

    fn fires(reason: Reason, object: &str) -> (TransitionKind, Reason, String) {
        (TransitionKind::Firing, reason, object.to_owned())
    }

    /// One alert of `reason` firing for each of `objects`, in that order.
    fn fire_all(reason: Reason, objects: &[&str]) -> Vec<(TransitionKind, Reason, String)> {
        objects.iter().map(|object| fires(reason, object)).collect()
    }

    fn repeats(reason: Reason, object: &str) -> (TransitionKind, Reason, String) {
        (TransitionKind::Repeat, reason, object.to_owned())
    }

    fn resolves(reason: Reason, object: &str) -> (TransitionKind, Reason, String) {
        (TransitionKind::Resolved, reason, object.to_owned())
    }

    /// Each transition as (kind, reason, object), to compare with `fires`, `repeats`, `resolves`.
    fn kinds(evaluation: &Evaluation) -> Vec<(TransitionKind, Reason, String)> {
        evaluation
            .transitions
            .iter()
            .map(|transition| {
                (
                    transition.kind,
                    transition.alert.reason,
                    transition.alert.object.to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn a_timed_out_certificate_fires_on_the_first_evaluation() {
        let snap = one_certificate("c1", Status::DeploymentTimedOut, at(0));
        let evaluation = evaluate(&AlertState::default(), &snap, at(1), &settings());
        assert_eq!(
            kinds(&evaluation),
            vec![fires(Reason::DeploymentTimedOut, "certificate c1")]
        );
        let alert = &evaluation.transitions[0].alert;
        assert_eq!(alert.since, Some(at(0)));
        assert_eq!(alert.started_at, at(1));
        assert_eq!(alert.cert_id.as_deref(), Some("c1"));
        assert_eq!(evaluation.state.count(Reason::DeploymentTimedOut), 1);
    }

    #[test]
    fn deletion_timed_out_fires_for_certificate_association_and_cert_status() {
        let snap = snapshot(
            vec![certificate("c1", Status::DeletionTimedOut, at(0))],
            vec![
                hostname(
                    "a.example.com",
                    "c1",
                    Status::DeletionTimedOut,
                    Status::Active,
                ),
                hostname(
                    "b.example.com",
                    "c1",
                    Status::Active,
                    Status::DeletionTimedOut,
                ),
                hostname("c.example.com", "c1", Status::Active, Status::Active),
            ],
            true,
        );
        let evaluation = evaluate(&AlertState::default(), &snap, at(1), &settings());
        assert_eq!(
            kinds(&evaluation),
            fire_all(
                Reason::DeletionTimedOut,
                &[
                    "certificate c1",
                    "hostname a.example.com",
                    "hostname b.example.com"
                ]
            )
        );
        // The certificate alert names the monitored hostnames it serves.
        assert_eq!(
            evaluation.transitions[0].alert.hostnames,
            vec!["a.example.com", "b.example.com", "c.example.com"]
        );
    }

    #[test]
    fn status_and_cert_status_with_the_same_reason_make_one_alert_from_the_earlier_since() {
        let mut both = hostname(
            "a.example.com",
            "c1",
            Status::DeploymentTimedOut,
            Status::DeploymentTimedOut,
        );
        both.status_since = Some(at(5));
        both.cert_status_since = Some(at(2));
        let snap = snapshot(vec![], vec![both], true);
        let evaluation = evaluate(&AlertState::default(), &snap, at(10), &settings());
        assert_eq!(evaluation.transitions.len(), 1);
        assert_eq!(evaluation.transitions[0].alert.since, Some(at(2)));
    }

    #[test]
    fn stuck_pending_fires_only_after_pending_timeout_from_the_status_since_time() {
        let snap = snapshot(
            vec![
                certificate("c1", Status::PendingDeployment, at(0)),
                certificate("c2", Status::Initializing, at(0)),
                certificate("c3", Status::PendingDeletion, at(0)),
                certificate("ok", Status::Active, at(0)),
            ],
            vec![],
            true,
        );
        // Exactly at the timeout: not longer than it yet.
        let early = evaluate(&AlertState::default(), &snap, at(30), &settings());
        assert!(early.transitions.is_empty(), "{:?}", kinds(&early));
        let late = evaluate(&AlertState::default(), &snap, at(31), &settings());
        assert_eq!(
            kinds(&late),
            fire_all(
                Reason::StuckPending,
                &["certificate c1", "certificate c2", "certificate c3"]
            )
        );
    }

    #[test]
    fn stuck_pending_counts_a_hostnames_cert_status_too() {
        let mut pending = hostname(
            "a.example.com",
            "c1",
            Status::Active,
            Status::PendingDeployment,
        );
        pending.cert_status_since = Some(at(100));
        let snap = snapshot(vec![], vec![pending], true);
        assert!(
            evaluate(&AlertState::default(), &snap, at(120), &settings())
                .transitions
                .is_empty()
        );
        let evaluation = evaluate(&AlertState::default(), &snap, at(131), &settings());
        assert_eq!(
            kinds(&evaluation),
            vec![fires(Reason::StuckPending, "hostname a.example.com")]
        );
    }

    #[test]
    fn a_firing_alert_repeats_only_after_repeat_interval_since_the_last_notification() {
        let snap = one_certificate("c1", Status::DeploymentTimedOut, at(0));
        let first = evaluate(&AlertState::default(), &snap, at(0), &settings());
        let quiet = evaluate(&first.state, &snap, at(4 * 60 - 1), &settings());
        assert!(quiet.transitions.is_empty());
        assert_eq!(
            quiet.state, first.state,
            "nothing changes within the interval"
        );
        let repeat = evaluate(&quiet.state, &snap, at(4 * 60), &settings());
        assert_eq!(
            kinds(&repeat),
            vec![repeats(Reason::DeploymentTimedOut, "certificate c1")]
        );
        let alert = &repeat.transitions[0].alert;
        assert_eq!(alert.started_at, at(0), "a repeat keeps its start");
        assert_eq!(alert.last_notified_at, at(4 * 60));
        let after = evaluate(&repeat.state, &snap, at(4 * 60 + 10), &settings());
        assert!(after.transitions.is_empty(), "the interval restarts");
    }

    #[test]
    fn a_cleared_condition_resolves_once() {
        let firing = one_certificate("c1", Status::DeploymentTimedOut, at(0));
        let cleared = one_certificate("c1", Status::Active, at(5));
        let first = evaluate(&AlertState::default(), &firing, at(0), &settings());
        let resolved = evaluate(&first.state, &cleared, at(5), &settings());
        assert_eq!(
            kinds(&resolved),
            vec![resolves(Reason::DeploymentTimedOut, "certificate c1")]
        );
        assert_eq!(resolved.transitions[0].at, at(5));
        assert!(resolved.state.firing.is_empty());
        let again = evaluate(&resolved.state, &cleared, at(6), &settings());
        assert!(again.transitions.is_empty());
    }

    #[test]
    fn a_vanished_object_resolves() {
        let firing = one_certificate("c1", Status::DeploymentTimedOut, at(0));
        let first = evaluate(&AlertState::default(), &firing, at(0), &settings());
        let gone = evaluate(
            &first.state,
            &snapshot(vec![], vec![], true),
            at(1),
            &settings(),
        );
        assert_eq!(gone.transitions.len(), 1);
        assert_eq!(gone.transitions[0].kind, TransitionKind::Resolved);
    }

    #[test]
    fn a_zone_whose_poll_failed_neither_fires_nor_resolves_nor_repeats() {
        let firing = one_certificate("c1", Status::DeploymentTimedOut, at(0));
        let first = evaluate(&AlertState::default(), &firing, at(0), &settings());

        // Last good data says cleared, but the poll failed: the alert carries over untouched,
        // even past its repeat interval.
        let failed_cleared = snapshot(vec![], vec![], false);
        let carried = evaluate(&first.state, &failed_cleared, at(10 * 60), &settings());
        assert!(carried.transitions.is_empty());
        assert_eq!(carried.state, first.state);

        // A new timeout in a failed zone's (stale) data does not fire either.
        let failed_new = snapshot(
            vec![certificate("c2", Status::DeploymentTimedOut, at(0))],
            vec![],
            false,
        );
        let nothing = evaluate(&AlertState::default(), &failed_new, at(1), &settings());
        assert!(nothing.transitions.is_empty());
        assert!(nothing.state.firing.is_empty());
    }

    #[test]
    fn alerts_of_a_zone_no_longer_watched_resolve() {
        let firing = one_certificate("c1", Status::DeploymentTimedOut, at(0));
        let first = evaluate(&AlertState::default(), &firing, at(0), &settings());
        let evaluation = evaluate(&first.state, &Snapshot::default(), at(1), &settings());
        assert_eq!(evaluation.transitions.len(), 1);
        assert_eq!(evaluation.transitions[0].kind, TransitionKind::Resolved);
    }

    #[test]
    fn expiring_is_off_by_default_and_fires_per_serving_certificate_within_the_warning() {
        let mut soon = certificate("soon", Status::Active, at(0));
        soon.api_expires_on = Some(at(60 * 24 * 10));
        let mut unused = certificate("unused", Status::Active, at(0));
        unused.api_expires_on = Some(at(60 * 24 * 5));
        let mut disabled = hostname("c.example.com", "unused", Status::Active, Status::Active);
        disabled.association = AssociationState::Disabled;
        let snap = snapshot(
            vec![soon, unused],
            vec![
                hostname("b.example.com", "soon", Status::Active, Status::Active),
                hostname("a.example.com", "soon", Status::Active, Status::Active),
                disabled,
            ],
            true,
        );
        assert!(
            evaluate(&AlertState::default(), &snap, at(0), &settings())
                .transitions
                .is_empty(),
            "off unless expiry_warning is set"
        );
        let mut warn_14d = settings();
        warn_14d.expiry_warning = Some(Duration::from_secs(14 * 86_400));
        let evaluation = evaluate(&AlertState::default(), &snap, at(0), &warn_14d);
        assert_eq!(
            kinds(&evaluation),
            vec![fires(Reason::Expiring, "certificate soon")]
        );
        let alert = &evaluation.transitions[0].alert;
        assert_eq!(alert.expires_at, Some(at(60 * 24 * 10)));
        assert_eq!(alert.hostnames, vec!["a.example.com", "b.example.com"]);

        let mut warn_7d = settings();
        warn_7d.expiry_warning = Some(Duration::from_secs(7 * 86_400));
        assert!(
            evaluate(&AlertState::default(), &snap, at(0), &warn_7d)
                .transitions
                .is_empty()
        );
    }

    #[test]
    fn expiring_falls_back_to_the_associations_expiry_for_an_unknown_certificate() {
        let mut host = hostname("a.example.com", "missing", Status::Active, Status::Active);
        host.cert_expires_on = Some(at(60));
        let snap = snapshot(vec![], vec![host], true);
        let mut with_warning = settings();
        with_warning.expiry_warning = Some(Duration::from_secs(86_400));
        let evaluation = evaluate(&AlertState::default(), &snap, at(0), &with_warning);
        assert_eq!(evaluation.transitions.len(), 1);
        assert_eq!(evaluation.transitions[0].alert.expires_at, Some(at(60)));
    }

    #[test]
    fn a_different_reason_for_the_same_object_is_a_different_alert() {
        let pending = one_certificate("c1", Status::PendingDeployment, at(0));
        let timed_out = one_certificate("c1", Status::DeploymentTimedOut, at(40));
        let first = evaluate(&AlertState::default(), &pending, at(31), &settings());
        assert_eq!(first.state.count(Reason::StuckPending), 1);
        let second = evaluate(&first.state, &timed_out, at(41), &settings());
        assert_eq!(
            kinds(&second),
            vec![
                fires(Reason::DeploymentTimedOut, "certificate c1"),
                resolves(Reason::StuckPending, "certificate c1"),
            ]
        );
    }
}
