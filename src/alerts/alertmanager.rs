//! The `alertmanager` sink: `POST <url>/api/v2/alerts` with a JSON array of postable alerts,
//! and the labels and annotations the `webhook` sink shares.
//!
//! Every firing alert is posted again after every poll cycle with `endsAt` a few cycles ahead,
//! so Alertmanager resolves it by itself if this daemon dies; a resolve posts `endsAt` = the
//! resolve time. Replicas post identical labels, and Alertmanager deduplicates on them: this
//! is how several replicas share alerts without duplicate pages.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use url::Url;

use super::message::{self, timestamp};
use super::outbox::Notification;
use super::{Alert, AlertObject, TransitionKind};

/// Alertmanager's path for posting alerts (API v2), relative to the configured root.
const ALERTS_PATH: &str = "api/v2/alerts";

/// `<root>/api/v2/alerts`, keeping any path prefix of the root (`http://host/alertmanager/`).
pub fn alerts_url(root: &Url) -> Url {
    let mut url = root.clone();
    let prefix = root.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}/{ALERTS_PATH}"));
    url
}

/// The identity labels of an alert: the same for its whole life (no status, no time), so
/// Alertmanager sees one alert from firing to resolved, across replicas and restarts.
pub fn labels(alert: &Alert) -> BTreeMap<&'static str, String> {
    let mut labels = BTreeMap::from([
        ("alertname", alert.reason.alert_name().to_owned()),
        ("reason", alert.reason.as_str().to_owned()),
        ("severity", alert.reason.severity().to_owned()),
        ("zone", alert.zone.clone()),
        ("zone_id", alert.zone_id.clone()),
    ]);
    match &alert.object {
        AlertObject::Certificate { scope, cert_id } => {
            labels.insert("object", "certificate".to_owned());
            labels.insert("scope", scope.as_str().to_owned());
            labels.insert("cert_id", cert_id.clone());
        }
        AlertObject::Hostname { hostname } => {
            labels.insert("object", "hostname".to_owned());
            labels.insert("hostname", hostname.clone());
        }
    }
    labels
}

/// Summary, description, remediation and the facts behind them, as strings.
pub fn annotations(alert: &Alert) -> BTreeMap<&'static str, String> {
    let remediation = message::remediation(alert);
    let mut annotations = BTreeMap::from([
        ("summary", message::summary(alert)),
        ("description", message::description(alert)),
        ("remediation", remediation.advice),
        ("remediation_api_call", remediation.api_call),
        ("runbook_url", alert.reason.runbook_url()),
    ]);
    if let Some(status) = alert.status {
        annotations.insert("status", status.as_str().to_owned());
    }
    if let Some(cert_status) = alert.cert_status {
        annotations.insert("cert_status", cert_status.as_str().to_owned());
    }
    if let (AlertObject::Hostname { .. }, Some(cert_id)) = (&alert.object, &alert.cert_id) {
        annotations.insert("cert_id", cert_id.clone());
    }
    if let Some(since) = alert.since {
        annotations.insert("since", timestamp(since));
    }
    if let Some(expires_at) = alert.expires_at {
        annotations.insert("expires_at", timestamp(expires_at));
    }
    if !alert.hostnames.is_empty() {
        annotations.insert("hostnames", message::hostname_list(&alert.hostnames));
    }
    annotations
}

/// The `POST /api/v2/alerts` body for a batch of queued posts.
pub fn payload(batch: &[Notification]) -> Value {
    Value::Array(batch.iter().map(postable_alert).collect())
}

fn postable_alert(notification: &Notification) -> Value {
    let alert = &notification.alert;
    let mut posted = json!({
        "labels": labels(alert),
        "annotations": annotations(alert),
        "startsAt": timestamp(alert.started_at),
    });
    // A resolve carries its own time; a firing post lapses unless posted again.
    let ends_at = match notification.kind {
        TransitionKind::Resolved => notification.ends_at.or(Some(notification.created_at)),
        TransitionKind::Firing | TransitionKind::Repeat => notification.ends_at,
    };
    if let Some(ends_at) = ends_at {
        posted["endsAt"] = Value::String(timestamp(ends_at));
    }
    posted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::fixtures::{self, at};
    use crate::alerts::{Alert, Reason};
    use crate::state::{Scope, Status};

    fn notification(kind: TransitionKind, ends_at: Option<i64>) -> Notification {
        let object = AlertObject::Certificate {
            scope: Scope::Hostname,
            cert_id: "c1".into(),
        };
        let notification =
            fixtures::notification(kind, object, Reason::DeploymentTimedOut, "shop.example");
        Notification {
            created_at: at(10),
            ends_at: ends_at.map(at),
            alert: Alert {
                status: Some(Status::DeploymentTimedOut),
                cert_id: Some("c1".into()),
                since: Some(at(-60)),
                ..notification.alert
            },
            ..notification
        }
    }

    #[test]
    fn the_alerts_url_keeps_a_path_prefix() {
        let plain = Url::parse("http://127.0.0.1:9093").unwrap();
        assert_eq!(
            alerts_url(&plain).as_str(),
            "http://127.0.0.1:9093/api/v2/alerts"
        );
        let prefixed = Url::parse("https://ops.example/alertmanager/").unwrap();
        assert_eq!(
            alerts_url(&prefixed).as_str(),
            "https://ops.example/alertmanager/api/v2/alerts"
        );
    }

    #[test]
    fn a_firing_post_has_identity_labels_and_a_future_ends_at() {
        let body = payload(&[notification(TransitionKind::Firing, Some(900))]);
        assert_eq!(
            body[0]["labels"],
            json!({
                "alertname": "CloudflareAOPDeploymentTimedOut",
                "reason": "deployment_timed_out",
                "severity": "critical",
                "zone": "shop.example",
                "zone_id": "z1",
                "object": "certificate",
                "scope": "hostname",
                "cert_id": "c1",
            })
        );
        assert_eq!(body[0]["startsAt"], "2027-01-15T08:00:00Z");
        assert_eq!(body[0]["endsAt"], "2027-01-15T08:15:00Z");
        assert_eq!(body[0]["annotations"]["status"], "deployment_timed_out");
        assert_eq!(body[0]["annotations"]["since"], "2027-01-15T07:59:00Z");
        assert_eq!(
            body[0]["annotations"]["runbook_url"],
            "https://github.com/cloudflare-aop-exporter/cloudflare-aop-exporter/blob/main/docs/runbook.md#cloudflareaopdeploymenttimedout"
        );
        assert!(
            body[0]["annotations"]["summary"]
                .as_str()
                .unwrap()
                .contains("is deployment_timed_out")
        );
    }

    #[test]
    fn a_resolve_ends_now() {
        let body = payload(&[notification(TransitionKind::Resolved, Some(20))]);
        assert_eq!(body[0]["endsAt"], "2027-01-15T08:00:20Z");
        let without = payload(&[notification(TransitionKind::Resolved, None)]);
        assert_eq!(without[0]["endsAt"], "2027-01-15T08:00:10Z", "queued time");
    }
}
