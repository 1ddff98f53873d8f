//! The `slack` sink: an incoming-webhook message with Block Kit `blocks` (header, summary,
//! the facts as fields, the remediation with its API call) and a plain `text` fallback that
//! notifications and old clients show.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::message::{self, timestamp};
use super::outbox::Notification;
use super::{AlertObject, TransitionKind};
use crate::state::Scope;

/// Slack cuts a header's text at 150 characters and a section's at 3000.
const HEADER_LIMIT: usize = 150;
const SECTION_LIMIT: usize = 3000;

/// The message body for one notification.
pub fn payload(notification: &Notification) -> Value {
    let alert = &notification.alert;
    let kind = notification.kind;
    let resolved = kind == TransitionKind::Resolved;
    let remediation = message::remediation(alert);
    let summary = if resolved {
        message::resolved_summary(
            alert,
            notification.ends_at.unwrap_or(notification.created_at),
        )
    } else {
        message::description(alert)
    };

    let mut text = format!("{}\n{summary}", message::title(kind, alert));
    if !resolved {
        let _ = write!(
            text,
            "\nRemediation: {}\n{}\nRunbook: {}",
            remediation.advice,
            remediation.api_call,
            alert.reason.runbook_url()
        );
    }

    let emoji = match kind {
        TransitionKind::Firing => ":rotating_light:",
        TransitionKind::Repeat => ":repeat:",
        TransitionKind::Resolved => ":white_check_mark:",
    };
    let heading = match kind {
        TransitionKind::Firing => message::reason_title(alert.reason).to_owned(),
        TransitionKind::Repeat => format!("Still firing: {}", message::reason_title(alert.reason)),
        TransitionKind::Resolved => format!("Resolved: {}", message::reason_title(alert.reason)),
    };

    let mut fields = vec![field(
        "Zone",
        &format!("{} (`{}`)", escape(&alert.zone), escape(&alert.zone_id)),
    )];
    match &alert.object {
        AlertObject::Certificate { scope, cert_id } => {
            let label = match scope {
                Scope::Hostname => "Certificate",
                Scope::Zone => "Zone-level certificate",
            };
            fields.push(field(label, &format!("`{}`", escape(cert_id))));
        }
        AlertObject::Hostname { hostname } => {
            fields.push(field("Hostname", &escape(hostname)));
            if let Some(cert_id) = &alert.cert_id {
                fields.push(field("Certificate", &format!("`{}`", escape(cert_id))));
            }
        }
    }
    if let Some(status) = message::stuck_status(alert) {
        fields.push(field("Status", &format!("`{status}`")));
    }
    if let Some(since) = alert.since {
        fields.push(field("Since", &slack_date(since)));
    }
    if let Some(expires_at) = alert.expires_at {
        fields.push(field("Expires", &slack_date(expires_at)));
    }
    if !alert.hostnames.is_empty() {
        fields.push(field(
            "Hostnames",
            &escape(&message::hostname_list(&alert.hostnames)),
        ));
    }

    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {"type": "plain_text", "emoji": true,
                     "text": cut(&format!("{emoji} {heading}"), HEADER_LIMIT)},
        }),
        json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": cut(&escape(&summary), SECTION_LIMIT)},
        }),
        json!({"type": "section", "fields": fields}),
    ];
    if !resolved {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": cut(
                &format!(
                    "*Remediation*\n{}\n```{}```",
                    escape(&remediation.advice),
                    escape(&remediation.api_call)
                ),
                SECTION_LIMIT,
            )},
        }));
    }
    blocks.push(context_block(alert));

    json!({"text": text, "blocks": blocks})
}

fn field(name: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": format!("*{name}*\n{value}")})
}

/// Slack's date token: shown in the reader's time zone, with the UTC time as fallback.
/// The footer: where it comes from, its identity, and the runbook link.
fn context_block(alert: &super::Alert) -> Value {
    json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": format!(
            "cloudflare-aop-exporter · reason `{}` · fingerprint `{}` · started {} · <{}|runbook>",
            alert.reason,
            alert.fingerprint,
            timestamp(alert.started_at),
            alert.reason.runbook_url()
        )}],
    })
}

fn slack_date(at: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "<!date^{}^{{date_short_pretty}} {{time}}|{}>",
        at.timestamp(),
        timestamp(at)
    )
}

/// Slack's mrkdwn escaping: `&`, `<` and `>` are control characters.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn cut(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(limit.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::fixtures::{self, at};
    use crate::alerts::{Alert, Reason};
    use crate::state::Status;

    fn notification(kind: TransitionKind) -> Notification {
        let object = AlertObject::Hostname {
            hostname: "eu.pay.example".into(),
        };
        let mut notification =
            fixtures::notification(kind, object, Reason::DeploymentTimedOut, "pay & co");
        notification.alert = Alert {
            status: Some(Status::DeploymentTimedOut),
            cert_status: Some(Status::DeploymentTimedOut),
            cert_id: Some("c1".into()),
            since: Some(at(-7200)),
            expires_at: Some(at(86_400 * 300)),
            ..notification.alert
        };
        notification
    }

    fn texts(body: &Value) -> String {
        body["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_firing_message_has_blocks_text_facts_and_the_api_call() {
        let body = payload(&notification(TransitionKind::Firing));
        let text = body["text"].as_str().unwrap();
        assert!(
            text.starts_with(
                "[FIRING] AOP deployment timed out: hostname eu.pay.example (pay & co)\n"
            ),
            "{text}"
        );
        assert!(text.contains("since 2027-01-15T06:00:00Z"), "{text}");
        assert!(
            text.ends_with("/docs/runbook.md#cloudflareaopdeploymenttimedout"),
            "{text}"
        );
        assert!(
            text.contains("/zones/z1/origin_tls_client_auth/hostnames"),
            "{text}"
        );
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(
            blocks[0]["text"]["text"],
            ":rotating_light: AOP deployment timed out"
        );
        let all = texts(&body);
        for expected in [
            "*Zone*\\npay &amp; co (`z1`)",
            "*Hostname*\\neu.pay.example",
            "*Certificate*\\n`c1`",
            "*Status*\\n`deployment_timed_out`",
            "*Since*\\n<!date^1799992800^{date_short_pretty} {time}|2027-01-15T06:00:00Z>",
            "*Expires*",
            "*Remediation*",
            r#"{\"config\":[{\"cert_id\":\"c1\",\"enabled\":true,\"hostname\":\"eu.pay.example\"}]}"#,
            "docs/runbook.md#cloudflareaopdeploymenttimedout|runbook>",
        ] {
            assert!(all.contains(expected), "missing {expected} in {all}");
        }
    }

    #[test]
    fn a_resolved_message_says_so_and_has_no_remediation() {
        let mut resolved = notification(TransitionKind::Resolved);
        resolved.ends_at = Some(at(600));
        let body = payload(&resolved);
        let text = body["text"].as_str().unwrap();
        assert!(text.starts_with("[RESOLVED] "), "{text}");
        assert!(
            text.contains("is no longer deployment_timed_out (resolved 2027-01-15T08:10:00Z)"),
            "{text}"
        );
        assert!(!texts(&body).contains("Remediation"));
        assert_eq!(
            body["blocks"][0]["text"]["text"],
            ":white_check_mark: Resolved: AOP deployment timed out"
        );
    }
}
