//! The `/` page: version, links, and a table of the watched zones, certificates and hostnames
//! with days left and status, coloured by the configured expiry thresholds.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::AlertSettings;
use crate::state::{
    AssociationState, CertificateState, HostnameSource, HostnameState, Snapshot, Status,
    ZoneSnapshot,
};
use crate::x509::Check;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Days-left colouring: red below `critical`, amber below `warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryThresholds {
    /// Red below this: where `check` reports a certificate as expiring.
    pub critical: Duration,
    /// Amber below this.
    pub warning: Duration,
}

/// Amber from 30 days out (unless the red threshold is later).
const WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

impl Default for ExpiryThresholds {
    fn default() -> Self {
        ExpiryThresholds {
            critical: crate::check::DEFAULT_EXPIRY_WARNING,
            warning: WARNING,
        }
    }
}

impl ExpiryThresholds {
    /// Red below `alerts.expiry_warning` (the default when unset, as `check` uses it), amber
    /// below 30 days or that, whichever is later.
    pub fn from_alerts(alerts: &AlertSettings) -> Self {
        let critical = alerts
            .expiry_warning
            .unwrap_or(crate::check::DEFAULT_EXPIRY_WARNING);
        ExpiryThresholds {
            critical,
            warning: WARNING.max(critical),
        }
    }
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// What days left are counted from and coloured by.
#[derive(Debug, Clone, Copy)]
struct DaysLeft {
    now: DateTime<Utc>,
    expiry: ExpiryThresholds,
}

impl DaysLeft {
    /// The days-left cell of an expiry at `at`.
    fn cell(self, at: Option<DateTime<Utc>>) -> String {
        days_cell(at.map(|at| (at - self.now).num_days()), self.expiry)
    }
}

/// Every zone's `objects` with their zone, soonest `expiry` first (unknown first).
fn soonest_first<'a, T: 'a, I: Iterator<Item = &'a T>>(
    snapshot: &'a Snapshot,
    objects: impl Fn(&'a ZoneSnapshot) -> I,
    expiry: impl Fn(&T) -> Option<DateTime<Utc>>,
) -> Vec<(&'a ZoneSnapshot, &'a T)> {
    let mut rows: Vec<_> = snapshot
        .zones
        .values()
        .flat_map(|zone| objects(zone).map(move |object| (&**zone, object)))
        .collect();
    rows.sort_by_key(|(_, object)| expiry(object));
    rows
}

fn days_cell(days: Option<i64>, expiry: ExpiryThresholds) -> String {
    match days {
        None => "<td>–</td>".to_owned(),
        Some(days) if days < 0 => format!("<td class=\"bad\">expired {} d ago</td>", -days),
        Some(days) if days < whole_days(expiry.critical) => {
            format!("<td class=\"bad\">{days}</td>")
        }
        Some(days) if days < whole_days(expiry.warning) => {
            format!("<td class=\"warn\">{days}</td>")
        }
        Some(days) => format!("<td>{days}</td>"),
    }
}

fn whole_days(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs() / DAY.as_secs()).unwrap_or(i64::MAX)
}

fn timestamp(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "never".to_owned(),
        |at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

fn status_text(status: Option<Status>) -> &'static str {
    status.map_or("–", Status::as_str)
}

/// The `/` page: version, links, zones, certificates and hostnames (soonest expiry first),
/// days left coloured by `expiry`.
pub fn render(snapshot: &Snapshot, now: DateTime<Utc>, expiry: ExpiryThresholds) -> String {
    let mut page = String::with_capacity(16 * 1024);
    let _ = write!(
        page,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>cloudflare-aop-exporter</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:2em}}\
         td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}th{{background:#f4f4f4}}\
         .bad{{background:#fdd}}.warn{{background:#ffe9b3}}.ok{{background:#dfd}}code{{font-size:.9em}}\
         </style></head><body><h1>cloudflare-aop-exporter {}</h1>\
         <p><a href=\"/metrics\">/metrics</a> · <a href=\"/api/v1/snapshot\">/api/v1/snapshot</a> · \
         <a href=\"/healthz\">/healthz</a> · <a href=\"/readyz\">/readyz</a></p>\
         <p>Poll cycles completed: {}. Data is refreshed by the poller, not per page load.</p>",
        env!("CARGO_PKG_VERSION"),
        snapshot.completed_cycles
    );

    let days_left = DaysLeft { now, expiry };
    render_zones(&mut page, snapshot);
    render_certificates(&mut page, snapshot, days_left);
    render_hostnames(&mut page, snapshot, days_left);
    page.push_str("</body></html>\n");
    page
}

fn render_zones(page: &mut String, snapshot: &Snapshot) {
    page.push_str(
        "<h2>Zones</h2><table><tr><th>zone</th><th>zone id</th><th>last poll</th>\
         <th>last success</th><th>zone-level AOP</th><th>certificates</th><th>hostnames</th></tr>",
    );
    for zone in snapshot.zones.values() {
        let poll = match (zone.last_attempt, zone.poll_success) {
            (None, _) => "<td>pending</td>".to_owned(),
            (Some(_), true) => "<td class=\"ok\">ok</td>".to_owned(),
            (Some(_), false) => format!(
                "<td class=\"bad\">failed: {}</td>",
                escape(zone.last_error.as_deref().unwrap_or("unknown error"))
            ),
        };
        let zone_level = match zone.zone_enabled {
            Some(true) => "enabled",
            Some(false) => "disabled",
            None => "–",
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td><code>{}</code></td>{poll}<td>{}</td><td>{zone_level}</td><td>{}</td><td>{}</td></tr>",
            escape(&zone.zone_name),
            escape(&zone.zone_id),
            timestamp(zone.last_success),
            zone.certificates.len(),
            zone.hostnames.len()
        );
    }
    page.push_str("</table>");
}

fn render_certificates(page: &mut String, snapshot: &Snapshot, days_left: DaysLeft) {
    let certificates = soonest_first(
        snapshot,
        |zone| zone.certificates.values(),
        CertificateState::expires_at,
    );
    page.push_str(
        "<h2>Certificates</h2><table><tr><th>zone</th><th>scope</th><th>certificate id</th>\
         <th>subject</th><th>status</th><th>expires</th><th>days left</th><th>hostnames</th>\
         <th>failing checks</th></tr>",
    );
    for (zone, certificate) in certificates {
        let failing: Vec<&str> = certificate.failing_checks().map(Check::as_str).collect();
        let status = status_text(certificate.status);
        let status_class = match certificate.status {
            Some(status) if status.is_timed_out() => " class=\"bad\"",
            Some(status) if status.is_pending() => " class=\"warn\"",
            _ => "",
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td{status_class}>{status}</td>\
             <td>{}</td>{}<td>{}</td><td{}>{}</td></tr>",
            escape(&zone.zone_name),
            certificate.scope,
            escape(&certificate.id),
            escape(
                certificate
                    .facts
                    .as_ref()
                    .map_or("–", |facts| facts.subject.as_str())
            ),
            timestamp(certificate.expires_at()),
            days_left.cell(certificate.expires_at()),
            certificate.monitored_hostnames,
            if failing.is_empty() {
                ""
            } else {
                " class=\"bad\""
            },
            escape(&failing.join(", "))
        );
    }
    page.push_str("</table>");
}

fn render_hostnames(page: &mut String, snapshot: &Snapshot, days_left: DaysLeft) {
    let hostnames = soonest_first(
        snapshot,
        |zone| zone.hostnames.values(),
        |hostname: &HostnameState| hostname.cert_expires_on,
    );
    page.push_str(
        "<h2>Hostnames</h2><table><tr><th>zone</th><th>hostname</th><th>source</th>\
         <th>association</th><th>status</th><th>certificate id</th><th>certificate status</th>\
         <th>days left</th></tr>",
    );
    for (zone, hostname) in hostnames {
        // A discovered hostname without an association simply does not use AOP: not a warning.
        let association_class = match (hostname.association, hostname.source) {
            (AssociationState::Enabled, _)
            | (AssociationState::Absent, HostnameSource::Discovered) => "ok",
            _ => "warn",
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{association_class}\">{}</td>\
             <td>{}</td><td><code>{}</code></td><td>{}</td>{}</tr>",
            escape(&zone.zone_name),
            escape(&hostname.hostname),
            hostname.source,
            hostname.association,
            status_text(hostname.status),
            escape(hostname.cert_id.as_deref().unwrap_or("–")),
            status_text(hostname.cert_status),
            days_left.cell(hostname.cert_expires_on),
        );
    }
    page.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn days_cells_colour_by_threshold() {
        let expiry = ExpiryThresholds::default();
        assert_eq!(
            days_cell(Some(-3), expiry),
            "<td class=\"bad\">expired 3 d ago</td>"
        );
        assert_eq!(days_cell(Some(10), expiry), "<td class=\"bad\">10</td>");
        assert_eq!(days_cell(Some(20), expiry), "<td class=\"warn\">20</td>");
        assert_eq!(days_cell(Some(90), expiry), "<td>90</td>");
        assert_eq!(days_cell(None, expiry), "<td>–</td>");
    }

    #[test]
    fn thresholds_follow_the_expiry_warning() {
        let defaults = ExpiryThresholds::from_alerts(&AlertSettings::default());
        assert_eq!(defaults, ExpiryThresholds::default());
        let alerts = AlertSettings {
            expiry_warning: Some(DAY * 45),
            ..AlertSettings::default()
        };
        let expiry = ExpiryThresholds::from_alerts(&alerts);
        assert_eq!(days_cell(Some(40), expiry), "<td class=\"bad\">40</td>");
        assert_eq!(days_cell(Some(50), expiry), "<td>50</td>");
        let alerts = AlertSettings {
            expiry_warning: Some(DAY * 7),
            ..AlertSettings::default()
        };
        let expiry = ExpiryThresholds::from_alerts(&alerts);
        assert_eq!(days_cell(Some(10), expiry), "<td class=\"warn\">10</td>");
    }
}
