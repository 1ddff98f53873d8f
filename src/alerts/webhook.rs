//! The `webhook` sink: one JSON document per notification in the shape of Alertmanager's
//! webhook (version 4), so receivers written for Alertmanager read it as is; optionally signed
//! with `X-Signature-256: sha256=<hex HMAC-SHA256 of the exact body bytes>`.

use hmac::digest::InvalidLength;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::alertmanager::{annotations, labels};
use super::message::timestamp;
use super::outbox::Notification;
use super::{AlertObject, TransitionKind};

/// The signature header (GitHub's name and format, which receivers commonly verify).
pub const SIGNATURE_HEADER: &str = "X-Signature-256";

/// Alertmanager's `endsAt` of an alert that has not ended (Go's zero time).
const NOT_ENDED: &str = "0001-01-01T00:00:00Z";

/// The webhook body for one notification; `receiver` is the sink's name.
pub fn payload(notification: &Notification, receiver: &str) -> Value {
    let alert = &notification.alert;
    let status = notification.kind.status();
    let labels = labels(alert);
    let annotations = annotations(alert);
    let ends_at = match notification.kind {
        TransitionKind::Resolved => {
            timestamp(notification.ends_at.unwrap_or(notification.created_at))
        }
        TransitionKind::Firing | TransitionKind::Repeat => NOT_ENDED.to_owned(),
    };
    let object_key = match &alert.object {
        AlertObject::Certificate { cert_id, .. } => format!("cert_id={cert_id:?}"),
        AlertObject::Hostname { hostname } => format!("hostname={hostname:?}"),
    };
    json!({
        "version": "4",
        "groupKey": format!(
            "{{}}:{{alertname={:?}, zone_id={:?}, {object_key}}}",
            alert.reason.alert_name(),
            alert.zone_id
        ),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": {"alertname": alert.reason.alert_name()},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        // Not in Alertmanager's shape: tells a first notification from a repeat.
        "notification": match notification.kind {
            TransitionKind::Firing => "firing",
            TransitionKind::Repeat => "repeat",
            TransitionKind::Resolved => "resolved",
        },
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": timestamp(alert.started_at),
            "endsAt": ends_at,
            "generatorURL": "",
            "fingerprint": alert.fingerprint,
        }],
    })
}

/// `sha256=<hex>`: HMAC-SHA256 of `body` keyed with `secret`.
///
/// HMAC takes keys of any length (long ones are hashed first); the error exists only because
/// the trait is shared with fixed-key MACs.
pub fn signature(secret: &[u8], body: &[u8]) -> Result<String, InvalidLength> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)?;
    mac.update(body);
    Ok(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Reason;
    use crate::alerts::fixtures::{self, at};
    use crate::state::Status;

    fn notification(kind: TransitionKind) -> Notification {
        let object = AlertObject::Hostname {
            hostname: "www.shop.example".into(),
        };
        let mut notification =
            fixtures::notification(kind, object, Reason::StuckPending, "shop.example");
        notification.id = 7;
        notification.created_at = at(5);
        notification.alert.status = Some(Status::PendingDeployment);
        notification.alert.cert_status = Some(Status::Active);
        notification.alert.cert_id = Some("c1".into());
        notification.alert.since = Some(at(-3600));
        notification
    }

    #[test]
    fn the_body_has_alertmanagers_webhook_v4_shape() {
        let firing = notification(TransitionKind::Firing);
        let body = payload(&firing, "ops-webhook");
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "firing");
        assert_eq!(body["receiver"], "ops-webhook");
        assert_eq!(body["notification"], "firing");
        assert_eq!(
            body["groupKey"],
            r#"{}:{alertname="CloudflareAOPStuckPending", zone_id="z1", hostname="www.shop.example"}"#
        );
        let alert = &body["alerts"][0];
        assert_eq!(alert["status"], "firing");
        assert_eq!(alert["labels"]["hostname"], "www.shop.example");
        assert_eq!(alert["labels"]["reason"], "stuck_pending");
        assert_eq!(alert["annotations"]["cert_id"], "c1");
        assert_eq!(alert["startsAt"], "2027-01-15T08:00:00Z");
        assert_eq!(alert["endsAt"], NOT_ENDED);
        assert_eq!(alert["fingerprint"], firing.alert.fingerprint);
        assert_eq!(body["commonLabels"], alert["labels"]);

        let resolved = payload(&notification(TransitionKind::Resolved), "ops-webhook");
        assert_eq!(resolved["status"], "resolved");
        assert_eq!(resolved["alerts"][0]["endsAt"], "2027-01-15T08:00:05Z");
        let repeat = payload(&notification(TransitionKind::Repeat), "ops-webhook");
        assert_eq!(repeat["status"], "firing");
        assert_eq!(repeat["notification"], "repeat");
    }

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?").unwrap(),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
