//! The words of a notification, shared by every sink: a title, a one-line summary, a
//! description with the facts, and a remediation hint with the exact Cloudflare API call.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};

use super::{Alert, AlertObject, Reason, TransitionKind};
use crate::config::DEFAULT_API_BASE_URL;
use crate::state::{Scope, Status};

/// Hostnames named in a message at most; the rest are counted.
const MAX_LISTED_HOSTNAMES: usize = 20;

/// What to do about an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remediation {
    /// One or two sentences.
    pub advice: String,
    /// A copy-pasteable `curl` command (the token comes from `$CLOUDFLARE_API_TOKEN`).
    pub api_call: String,
}

/// A timestamp as receivers and humans read it: RFC 3339, UTC, seconds.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What is wrong, in a few words: `AOP deployment timed out`.
pub fn reason_title(reason: Reason) -> &'static str {
    match reason {
        Reason::DeploymentTimedOut => "AOP deployment timed out",
        Reason::DeletionTimedOut => "AOP deletion timed out",
        Reason::StuckPending => "AOP change stuck pending",
        Reason::Expiring => "AOP client certificate expiring",
    }
}

/// The headline: `[FIRING] AOP deployment timed out: certificate … (shop.example)`.
pub fn title(kind: TransitionKind, alert: &Alert) -> String {
    let prefix = match kind {
        TransitionKind::Firing => "[FIRING]",
        TransitionKind::Repeat => "[STILL FIRING]",
        TransitionKind::Resolved => "[RESOLVED]",
    };
    format!(
        "{prefix} {}: {} ({})",
        reason_title(alert.reason),
        alert.object,
        alert.zone
    )
}

/// One sentence: what is stuck, where, in which status, since when.
pub fn summary(alert: &Alert) -> String {
    let mut text = format!("{} in zone {}", capitalised(&alert.object), alert.zone);
    if alert.reason == Reason::Expiring {
        let expires = alert
            .expires_at
            .map_or_else(|| "soon".to_owned(), timestamp);
        let _ = write!(text, " expires {expires}");
    } else {
        let _ = write!(text, " is {}", stuck_status_text(alert));
        if let Some(since) = alert.since {
            let _ = write!(text, " since {}", timestamp(since));
        }
    }
    text
}

/// The facts, several sentences: statuses, the certificate, expiry, hostnames served.
pub fn description(alert: &Alert) -> String {
    let mut text = summary(alert);
    text.push('.');
    let _ = write!(text, " Zone id {}.", alert.zone_id);
    if let AlertObject::Hostname { .. } = alert.object {
        if let Some(cert_id) = &alert.cert_id {
            let _ = write!(text, " Certificate {cert_id}");
            if let Some(cert_status) = alert.cert_status {
                let _ = write!(text, " (cert_status {cert_status})");
            }
            text.push('.');
        }
    }
    if alert.reason != Reason::Expiring {
        if let Some(expires_at) = alert.expires_at {
            let _ = write!(text, " The certificate expires {}.", timestamp(expires_at));
        }
    }
    if !alert.hostnames.is_empty() {
        let _ = write!(
            text,
            " Monitored hostnames using it: {}.",
            hostname_list(&alert.hostnames)
        );
    }
    text
}

/// What the resolved message says happened.
pub fn resolved_summary(alert: &Alert, at: DateTime<Utc>) -> String {
    format!(
        "{} in zone {} is no longer {} (resolved {}).",
        capitalised(&alert.object),
        alert.zone,
        match alert.reason {
            Reason::Expiring => "expiring within the warning window".to_owned(),
            _ => stuck_status_text(alert),
        },
        timestamp(at)
    )
}

/// `deployment_timed_out`, or `status active, cert_status deployment_timed_out` for a
/// hostname whose certificate side is stuck.
fn stuck_status_text(alert: &Alert) -> String {
    match (&alert.object, alert.status, alert.cert_status) {
        (AlertObject::Hostname { .. }, status, Some(cert_status))
            if status != Some(cert_status) && fires(alert.reason, cert_status) =>
        {
            format!(
                "cert_status {cert_status} (association status {})",
                status.map_or("unknown", Status::as_str)
            )
        }
        (_, Some(status), _) => status.as_str().to_owned(),
        (_, None, _) => alert.reason.as_str().to_owned(),
    }
}

/// Whether `status` is one that fires `reason`.
fn fires(reason: Reason, status: Status) -> bool {
    match reason {
        Reason::StuckPending => status.is_pending(),
        other => Reason::of_timed_out(status) == Some(other),
    }
}

/// The most relevant stuck status of the alert (`cert_status` when it is the one that fires).
pub fn stuck_status(alert: &Alert) -> Option<Status> {
    match alert.cert_status {
        Some(cert_status)
            if matches!(alert.object, AlertObject::Hostname { .. })
                && fires(alert.reason, cert_status)
                && !alert
                    .status
                    .is_some_and(|status| fires(alert.reason, status)) =>
        {
            Some(cert_status)
        }
        _ => alert.status,
    }
}

fn capitalised(object: &AlertObject) -> String {
    let text = object.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

/// `a, b, c and 4 more`.
pub fn hostname_list(hostnames: &[String]) -> String {
    let shown: Vec<&str> = hostnames
        .iter()
        .take(MAX_LISTED_HOSTNAMES)
        .map(String::as_str)
        .collect();
    let mut text = shown.join(", ");
    if hostnames.len() > MAX_LISTED_HOSTNAMES {
        let _ = write!(text, " and {} more", hostnames.len() - MAX_LISTED_HOSTNAMES);
    }
    text
}

/// What to do, with the exact API call. Write calls need a token with "SSL and Certificates
/// Write"; the exporter itself only ever reads.
pub fn remediation(alert: &Alert) -> Remediation {
    let zone_id = &alert.zone_id;
    let cert_id = alert.cert_id.as_deref().unwrap_or("<cert_id>");
    let pending_deletion = stuck_status(alert) == Some(Status::PendingDeletion);
    let deleting = alert.reason == Reason::DeletionTimedOut
        || (alert.reason == Reason::StuckPending && pending_deletion);
    match (&alert.object, alert.reason) {
        (_, Reason::Expiring) => Remediation {
            advice: format!(
                "Upload a renewed client certificate, then move the hostnames it serves ({}) to \
                 the new certificate id with PUT …/origin_tls_client_auth/hostnames.",
                hostname_list(&alert.hostnames)
            ),
            api_call: curl(
                "POST",
                &format!("zones/{zone_id}/origin_tls_client_auth/hostnames/certificates"),
                Some(r#"{"certificate":"<PEM certificate>","private_key":"<PEM private key>"}"#),
            ),
        },
        (AlertObject::Hostname { hostname }, _) if deleting => Remediation {
            advice: format!(
                "Send the removal of {hostname}'s association again (enabled: null voids it)."
            ),
            api_call: curl(
                "PUT",
                &format!("zones/{zone_id}/origin_tls_client_auth/hostnames"),
                Some(&association_body(hostname, cert_id, None)),
            ),
        },
        (AlertObject::Hostname { hostname }, _) => Remediation {
            advice: format!(
                "Re-send {hostname}'s association so Cloudflare deploys it again; if the \
                 certificate itself failed, re-upload it first and use the new certificate id."
            ),
            api_call: curl(
                "PUT",
                &format!("zones/{zone_id}/origin_tls_client_auth/hostnames"),
                Some(&association_body(hostname, cert_id, Some(true))),
            ),
        },
        (AlertObject::Certificate { scope, cert_id }, _) if deleting => Remediation {
            advice: "Delete the certificate again; Cloudflare restarts the deletion.".to_owned(),
            api_call: curl(
                "DELETE",
                &match scope {
                    Scope::Hostname => format!(
                        "zones/{zone_id}/origin_tls_client_auth/hostnames/certificates/{cert_id}"
                    ),
                    Scope::Zone => format!("zones/{zone_id}/origin_tls_client_auth/{cert_id}"),
                },
                None,
            ),
        },
        (
            AlertObject::Certificate {
                scope: Scope::Hostname,
                ..
            },
            _,
        ) => Remediation {
            advice: if alert.hostnames.is_empty() {
                "Re-upload the certificate and its key; associations must then name the new \
                 certificate id (PUT …/origin_tls_client_auth/hostnames)."
                    .to_owned()
            } else {
                format!(
                    "Re-upload the certificate and its key, then point its hostnames ({}) at the \
                     new certificate id with PUT …/origin_tls_client_auth/hostnames.",
                    hostname_list(&alert.hostnames)
                )
            },
            api_call: curl(
                "POST",
                &format!("zones/{zone_id}/origin_tls_client_auth/hostnames/certificates"),
                Some(r#"{"certificate":"<PEM certificate>","private_key":"<PEM private key>"}"#),
            ),
        },
        (
            AlertObject::Certificate {
                scope: Scope::Zone, ..
            },
            _,
        ) => Remediation {
            advice: "Re-upload the zone-level certificate and its key.".to_owned(),
            api_call: curl(
                "POST",
                &format!("zones/{zone_id}/origin_tls_client_auth"),
                Some(r#"{"certificate":"<PEM certificate>","private_key":"<PEM private key>"}"#),
            ),
        },
    }
}

/// `{"config":[{"hostname":…,"cert_id":…,"enabled":…}]}`, built by serde so names are escaped.
fn association_body(hostname: &str, cert_id: &str, enabled: Option<bool>) -> String {
    serde_json::json!({
        "config": [{"hostname": hostname, "cert_id": cert_id, "enabled": enabled}]
    })
    .to_string()
}

fn curl(method: &str, path: &str, body: Option<&str>) -> String {
    let mut command = format!(
        "curl -X {method} \"{DEFAULT_API_BASE_URL}/{path}\" -H \"Authorization: Bearer $CLOUDFLARE_API_TOKEN\""
    );
    if let Some(body) = body {
        let _ = write!(
            command,
            " -H \"Content-Type: application/json\" --data '{body}'"
        );
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::fingerprint;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    fn alert(object: AlertObject, reason: Reason, status: Status) -> Alert {
        Alert {
            fingerprint: fingerprint("z1", &object, reason),
            reason,
            zone_id: "z1".into(),
            zone: "shop.example".into(),
            object,
            status: Some(status),
            cert_status: None,
            cert_id: Some("c1".into()),
            since: Some(at(0)),
            expires_at: Some(at(86_400)),
            hostnames: vec!["www.shop.example".into()],
            started_at: at(0),
            last_notified_at: at(0),
        }
    }

    fn hostname_alert(reason: Reason, status: Status, cert_status: Status) -> Alert {
        let mut alert = alert(
            AlertObject::Hostname {
                hostname: "www.shop.example".into(),
            },
            reason,
            status,
        );
        alert.cert_status = Some(cert_status);
        alert.hostnames.clear();
        alert
    }

    #[test]
    fn a_timed_out_association_says_what_where_since_and_how_to_resend_it() {
        let alert = hostname_alert(
            Reason::DeploymentTimedOut,
            Status::DeploymentTimedOut,
            Status::Active,
        );
        assert_eq!(
            summary(&alert),
            "Hostname www.shop.example in zone shop.example is deployment_timed_out since 2027-01-15T08:00:00Z"
        );
        let description = description(&alert);
        assert!(description.contains("Zone id z1."), "{description}");
        assert!(
            description.contains("Certificate c1 (cert_status active)."),
            "{description}"
        );
        assert!(
            description.contains("expires 2027-01-16T08:00:00Z"),
            "{description}"
        );
        let remediation = remediation(&alert);
        assert_eq!(
            remediation.api_call,
            "curl -X PUT \"https://api.cloudflare.com/client/v4/zones/z1/origin_tls_client_auth/hostnames\" \
             -H \"Authorization: Bearer $CLOUDFLARE_API_TOKEN\" -H \"Content-Type: application/json\" \
             --data '{\"config\":[{\"cert_id\":\"c1\",\"enabled\":true,\"hostname\":\"www.shop.example\"}]}'"
        );
    }

    #[test]
    fn a_stuck_cert_status_is_named_as_such() {
        let alert = hostname_alert(
            Reason::DeploymentTimedOut,
            Status::Active,
            Status::DeploymentTimedOut,
        );
        assert!(
            summary(&alert)
                .contains("is cert_status deployment_timed_out (association status active)"),
            "{}",
            summary(&alert)
        );
        assert_eq!(stuck_status(&alert), Some(Status::DeploymentTimedOut));
    }

    #[test]
    fn remediation_matches_the_object_and_the_reason() {
        let certificate = AlertObject::Certificate {
            scope: Scope::Hostname,
            cert_id: "c1".into(),
        };
        let deploy = remediation(&alert(
            certificate.clone(),
            Reason::DeploymentTimedOut,
            Status::DeploymentTimedOut,
        ));
        assert!(deploy.api_call.starts_with(
            "curl -X POST \"https://api.cloudflare.com/client/v4/zones/z1/origin_tls_client_auth/hostnames/certificates\""
        ));
        assert!(deploy.advice.contains("www.shop.example"));
        let delete = remediation(&alert(
            certificate,
            Reason::DeletionTimedOut,
            Status::DeletionTimedOut,
        ));
        assert!(delete.api_call.starts_with(
            "curl -X DELETE \"https://api.cloudflare.com/client/v4/zones/z1/origin_tls_client_auth/hostnames/certificates/c1\""
        ));
        let zone_level = remediation(&alert(
            AlertObject::Certificate {
                scope: Scope::Zone,
                cert_id: "c9".into(),
            },
            Reason::StuckPending,
            Status::PendingDeletion,
        ));
        assert!(
            zone_level
                .api_call
                .contains("/zones/z1/origin_tls_client_auth/c9\"")
        );
        let unassociate = remediation(&hostname_alert(
            Reason::StuckPending,
            Status::PendingDeletion,
            Status::Active,
        ));
        assert!(
            unassociate.api_call.contains("\"enabled\":null"),
            "{}",
            unassociate.api_call
        );
    }

    #[test]
    fn titles_and_resolved_text() {
        let alert = alert(
            AlertObject::Certificate {
                scope: Scope::Zone,
                cert_id: "c1".into(),
            },
            Reason::DeploymentTimedOut,
            Status::DeploymentTimedOut,
        );
        assert_eq!(
            title(TransitionKind::Firing, &alert),
            "[FIRING] AOP deployment timed out: zone-level certificate c1 (shop.example)"
        );
        assert!(title(TransitionKind::Repeat, &alert).starts_with("[STILL FIRING]"));
        assert_eq!(
            resolved_summary(&alert, at(60)),
            "Zone-level certificate c1 in zone shop.example is no longer deployment_timed_out (resolved 2027-01-15T08:01:00Z)."
        );
    }

    #[test]
    fn long_hostname_lists_are_cut() {
        let names: Vec<String> = (0..25).map(|i| format!("h{i}.example")).collect();
        let list = hostname_list(&names);
        assert!(list.ends_with("h19.example and 5 more"), "{list}");
    }
}
