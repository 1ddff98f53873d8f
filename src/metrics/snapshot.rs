//! The snapshot families, written as Prometheus text straight from a [`Snapshot`].
//!
//! No `MetricFamily` objects: at full scale (10,000 hostnames) that is hundreds of
//! thousands of series, and building protobuf structs for each would cost far more than the
//! 25 ms render budget. Each family walks the snapshot once, so its series stay together;
//! each object's series prefix (name and escaped labels) is built once per family in a
//! scratch buffer and copied into each of its lines.

use std::sync::LazyLock;

use strum::IntoEnumIterator as _;

use super::{MetricsOptions, StateSets};
use crate::state::{
    AssociationState, CertificateState, HostnameState, Scope, Snapshot, Status, ZoneSnapshot,
};
use crate::x509::Check;

/// Appended to every HELP text: scrapes read the poller's snapshot, they never call the API.
macro_rules! refreshed {
    ($help:literal) => {
        concat!($help, " (refreshed by the poller, not per scrape).")
    };
}

/// One snapshot family: its name and HELP text (all of them are gauges, `StateSet`s included).
struct Family {
    name: &'static str,
    help: &'static str,
}

/// Declares each snapshot family once (a constant per family, HELP text refreshed) and
/// [`SNAPSHOT_FAMILIES`], their names in rendering order.
macro_rules! families {
    ($($family:ident: $name:literal, $help:literal;)+) => {
        $(const $family: Family = Family { name: $name, help: refreshed!($help) };)+

        /// Every snapshot family's name, in rendering order.
        pub const SNAPSHOT_FAMILIES: [&str; [$($name),+].len()] = [$($name),+];
    };
}

families! {
    CERTIFICATE_INFO: "cloudflare_aop_certificate_info",
        "AOP certificate metadata (value always 1), as of the last successful poll of the zone";
    CERTIFICATE_EXPIRY: "cloudflare_aop_certificate_expiry_timestamp_seconds",
        "Certificate expiry as a Unix timestamp: the API's expires_on, else the PEM notAfter";
    CERTIFICATE_NOT_BEFORE: "cloudflare_aop_certificate_not_before_timestamp_seconds",
        "Start of the certificate's validity (PEM notBefore) as a Unix timestamp";
    CERTIFICATE_UPLOADED: "cloudflare_aop_certificate_uploaded_timestamp_seconds",
        "When the certificate was uploaded to Cloudflare, as a Unix timestamp";
    CERTIFICATE_STATUS: "cloudflare_aop_certificate_status",
        "Certificate status as a StateSet: one series per status, the current one 1";
    CERTIFICATE_STATUS_SINCE: "cloudflare_aop_certificate_status_since_timestamp_seconds",
        "When the certificate's current status was first seen, as a Unix timestamp (kept across restarts)";
    CERTIFICATE_HOSTNAMES: "cloudflare_aop_certificate_hostnames",
        "Monitored hostnames whose association uses this per-hostname certificate";
    CERTIFICATE_CHECK: "cloudflare_aop_certificate_check",
        "Certificate checks: 1 pass, 0 fail";
    HOSTNAME_INFO: "cloudflare_aop_hostname_info",
        "A watched hostname (value always 1): source is configured (named in the config) or discovered (a proxied DNS record, discover_hostnames)";
    HOSTNAME_ASSOCIATION: "cloudflare_aop_hostname_association",
        "Hostname AOP association as a StateSet: enabled, disabled, voided (enabled null) or absent (404)";
    HOSTNAME_ENABLED: "cloudflare_aop_hostname_enabled",
        "1 if the hostname's AOP association is enabled, 0 otherwise";
    HOSTNAME_STATUS: "cloudflare_aop_hostname_status",
        "Hostname association status as a StateSet: one series per status, the current one 1";
    HOSTNAME_CERTIFICATE_STATUS: "cloudflare_aop_hostname_certificate_status",
        "Hostname association cert_status as a StateSet: one series per status, the current one 1";
    HOSTNAME_CERTIFICATE_EXPIRY: "cloudflare_aop_hostname_certificate_expiry_timestamp_seconds",
        "Expiry of the certificate serving the hostname, as a Unix timestamp";
    HOSTNAME_STATUS_SINCE: "cloudflare_aop_hostname_status_since_timestamp_seconds",
        "Since when the hostname association has its current status (updated_at, else first seen), as a Unix timestamp";
    ZONE_ENABLED: "cloudflare_aop_zone_enabled",
        "1 if the zone-level AOP setting is on, 0 if off";
    ZONE_CERTIFICATES: "cloudflare_aop_zone_certificates",
        "AOP certificates in the zone, by scope, as of the last successful poll of the zone";
    ZONE_POLL_SUCCESS: "cloudflare_aop_zone_poll_success",
        "1 if the zone's last poll fully succeeded, 0 if it failed";
    ZONE_LAST_SUCCESS: "cloudflare_aop_zone_last_success_timestamp_seconds",
        "When the zone was last polled successfully, as a Unix timestamp";
    ZONE_OLDEST_REFRESH: "cloudflare_aop_zone_oldest_refresh_timestamp_seconds",
        "When the zone's least recently refreshed object was last fetched successfully, as a Unix timestamp (no series while an object was never fetched)";
    REFRESH_SWEEP: "cloudflare_aop_refresh_sweep_seconds",
        "Estimated time for every watched object to be refreshed once at the request budget (N/B, at least one tick), in seconds";
    TOKEN_VALID: "cloudflare_aop_token_valid",
        "1 if the API token verified as valid at the last check, 0 if not";
}

/// Rough bytes per line, label values excluded: used only to pre-size the output.
const LINE_OVERHEAD: usize = 100;
/// Series per certificate: info, 4 timestamps, 8 statuses, hostnames, 5 checks.
const LINES_PER_CERTIFICATE: usize = 19;
/// Series per hostname: info, 4 association states, enabled, 2 × 8 statuses, 2 timestamps.
const LINES_PER_HOSTNAME: usize = 24;
/// Series per zone: enabled, 2 certificate counts, poll success, last success, oldest refresh.
const LINES_PER_ZONE: usize = 6;

/// Appends every snapshot family of the README's "Metrics" table (`certificate_info` …
/// `zone_last_success_timestamp_seconds`, then `token_valid`) to `out` in the Prometheus text
/// format. Families without a series are left out entirely; unknown values produce no series.
pub fn render_snapshot(snapshot: &Snapshot, out: &mut String) {
    render_with(snapshot, &MetricsOptions::default(), out);
}

/// [`render_snapshot`] with `options` (`StateSet` mode, excluded families).
pub(super) fn render_with(snapshot: &Snapshot, options: &MetricsOptions, out: &mut String) {
    out.reserve(estimated_len(snapshot));
    render(snapshot, options, out, None);
}

/// Like [`render_snapshot`], but hands the text to `emit` in chunks of about `chunk_len`
/// bytes, each ending at a line boundary; concatenated, they are exactly what
/// [`render_snapshot`] writes.
///
/// At full scale the text is ~43 MB. One fresh `String` of that size costs more in first-touch
/// page faults than the formatting itself; chunks of a few hundred KiB, sent as they are
/// produced (a streaming response body), reuse the same few allocations and keep the peak
/// memory of a scrape small.
pub fn render_snapshot_chunks(snapshot: &Snapshot, chunk_len: usize, mut emit: impl FnMut(String)) {
    let mut out = chunk_buffer(chunk_len);
    let options = MetricsOptions::default();
    render_chunked(snapshot, &options, &mut out, chunk_len, &mut emit);
    if !out.is_empty() {
        emit(out);
    }
}

/// [`render_snapshot_chunks`] with `options`, leaving the last, not yet full, chunk in `out`.
pub(super) fn render_chunked(
    snapshot: &Snapshot,
    options: &MetricsOptions,
    out: &mut String,
    chunk_len: usize,
    emit: &mut dyn FnMut(String),
) {
    render(snapshot, options, out, Some(Chunking { chunk_len, emit }));
}

/// A buffer for one chunk: room for a whole object past the threshold, so it never regrows.
pub(super) fn chunk_buffer(chunk_len: usize) -> String {
    String::with_capacity(chunk_len.saturating_add(CHUNK_SLACK))
}

/// Room past `chunk_len` for the rest of the object that crossed it (a certificate's or a
/// hostname's series of one family are at most a few KiB).
const CHUNK_SLACK: usize = 16 * 1024;

fn render(
    snapshot: &Snapshot,
    options: &MetricsOptions,
    out: &mut String,
    chunking: Option<Chunking<'_>>,
) {
    let mut renderer = Renderer {
        snapshot,
        options,
        out,
        prefix: String::with_capacity(512),
        chunking,
        header_start: None,
        series_start: 0,
    };
    renderer.certificate_info();
    renderer.certificate_families();
    renderer.hostname_families();
    renderer.zone_families();
    renderer.account_families();
}

/// Where full chunks go when rendering in chunks.
struct Chunking<'e> {
    chunk_len: usize,
    emit: &'e mut dyn FnMut(String),
}

/// Walks the snapshot once per family, so each family's series stay together.
struct Renderer<'a, 'e> {
    snapshot: &'a Snapshot,
    options: &'a MetricsOptions,
    out: &'a mut String,
    /// Scratch buffer for the current series' start: `name{` and the object's escaped labels,
    /// built once per object and copied into each of its lines.
    prefix: String,
    chunking: Option<Chunking<'e>>,
    /// Where the current family's header starts in `out`; `None` once a chunk holding it was
    /// handed over (the family has series then).
    header_start: Option<usize>,
    /// Where the current family's series start in `out` (0 after a chunk was handed over).
    series_start: usize,
}

impl Renderer<'_, '_> {
    /// Whether `metrics.exclude_families` names `family`.
    fn excluded(&self, family: &Family) -> bool {
        self.options
            .exclude_families
            .iter()
            .any(|excluded| excluded == family.name)
    }

    fn certificate_info(&mut self) {
        self.certificates(&CERTIFICATE_INFO, |out, prefix, certificate| {
            let facts = certificate.facts.as_ref();
            let issuer = facts.map(|facts| facts.issuer.as_str());
            let serial = facts.map(|facts| facts.serial_decimal.as_str());
            let signature = facts.map(|facts| facts.signature_algorithm.as_str());
            let subject = facts.map_or("", |facts| facts.subject.as_str());
            push_label(
                prefix,
                "issuer",
                api_or_pem(certificate.issuer.as_deref(), issuer),
            );
            push_label(
                prefix,
                "serial_number",
                api_or_pem(certificate.serial_number.as_deref(), serial),
            );
            push_label(
                prefix,
                "signature",
                api_or_pem(certificate.signature.as_deref(), signature),
            );
            push_label(prefix, "subject", subject);
            push_sample(out, prefix, 1);
        });
    }

    fn certificate_families(&mut self) {
        let statesets = self.options.statesets;
        self.certificates(&CERTIFICATE_EXPIRY, |out, prefix, certificate| {
            if let Some(expiry) = certificate.expires_at() {
                push_sample(out, prefix, expiry.timestamp());
            }
        });
        self.certificates(&CERTIFICATE_NOT_BEFORE, |out, prefix, certificate| {
            if let Some(facts) = &certificate.facts {
                push_sample(out, prefix, facts.not_before.timestamp());
            }
        });
        self.certificates(&CERTIFICATE_UPLOADED, |out, prefix, certificate| {
            if let Some(uploaded) = certificate.uploaded_on {
                push_sample(out, prefix, uploaded.timestamp());
            }
        });
        self.certificates(&CERTIFICATE_STATUS, |out, prefix, certificate| {
            if let Some(status) = certificate.status {
                push_status_set(out, prefix, status, statesets);
            }
        });
        self.certificates(&CERTIFICATE_STATUS_SINCE, |out, prefix, certificate| {
            if let Some(since) = certificate.status_since {
                push_sample(out, prefix, since.timestamp());
            }
        });
        self.certificate_hostnames();
        self.certificates(&CERTIFICATE_CHECK, |out, prefix, certificate| {
            let object_len = prefix.len();
            // Check::ALL order, and each check once even if the poller ever repeated one.
            for check in Check::ALL {
                if let Some((_, passed)) = certificate.checks.iter().find(|(c, _)| *c == check) {
                    prefix.truncate(object_len);
                    push_label(prefix, "check", check.as_str());
                    push_sample(out, prefix, i64::from(*passed));
                }
            }
        });
    }

    /// Only per-hostname certificates have associations, hence no scope label.
    fn certificate_hostnames(&mut self) {
        if self.excluded(&CERTIFICATE_HOSTNAMES) {
            return;
        }
        self.begin_family(&CERTIFICATE_HOSTNAMES);
        let snapshot = self.snapshot;
        for zone in snapshot.zones.values() {
            push_zone_labels(&mut self.prefix, CERTIFICATE_HOSTNAMES.name, zone);
            let zone_len = self.prefix.len();
            for certificate in zone.certificates.values() {
                if certificate.scope == Scope::Hostname {
                    self.prefix.truncate(zone_len);
                    push_label(&mut self.prefix, "cert_id", &certificate.id);
                    let count = i64::from(certificate.monitored_hostnames);
                    push_sample(self.out, &self.prefix, count);
                    self.object_done();
                }
            }
        }
        self.end_family();
    }

    fn hostname_families(&mut self) {
        self.hostnames(&HOSTNAME_INFO, |out, prefix, hostname| {
            push_label(prefix, "source", hostname.source.as_str());
            push_sample(out, prefix, 1);
        });
        let statesets = self.options.statesets;
        self.hostnames(&HOSTNAME_ASSOCIATION, |out, prefix, hostname| {
            push_state_set(
                out,
                prefix,
                &ASSOCIATION_ENDINGS,
                hostname.association,
                statesets,
            );
        });
        self.hostnames(&HOSTNAME_ENABLED, |out, prefix, hostname| {
            let enabled = hostname.association == AssociationState::Enabled;
            push_sample(out, prefix, i64::from(enabled));
        });
        self.hostnames(&HOSTNAME_STATUS, |out, prefix, hostname| {
            if let Some(status) = hostname.status {
                push_status_set(out, prefix, status, statesets);
            }
        });
        self.hostnames(&HOSTNAME_CERTIFICATE_STATUS, |out, prefix, hostname| {
            if let (Some(cert_id), Some(status)) = (&hostname.cert_id, hostname.cert_status) {
                push_label(prefix, "cert_id", cert_id);
                push_status_set(out, prefix, status, statesets);
            }
        });
        self.hostnames(&HOSTNAME_CERTIFICATE_EXPIRY, |out, prefix, hostname| {
            if let Some(expiry) = hostname.cert_expires_on {
                // The expiry is the value; an unknown certificate id only blanks its label.
                push_label(prefix, "cert_id", hostname.cert_id.as_deref().unwrap_or(""));
                push_sample(out, prefix, expiry.timestamp());
            }
        });
        self.hostnames(&HOSTNAME_STATUS_SINCE, |out, prefix, hostname| {
            if let Some(since) = hostname.status_since {
                push_sample(out, prefix, since.timestamp());
            }
        });
    }

    fn zone_families(&mut self) {
        self.zones(&ZONE_ENABLED, |out, prefix, zone| {
            if let Some(enabled) = zone.zone_enabled {
                push_sample(out, prefix, i64::from(enabled));
            }
        });
        self.zones(&ZONE_CERTIFICATES, |out, prefix, zone| {
            // Before the first successful poll the count is unknown, not zero.
            if zone.last_success.is_none() {
                return;
            }
            let zone_len = prefix.len();
            for scope in [Scope::Hostname, Scope::Zone] {
                // zone_level = false: the zone-level certificates were never asked for.
                if scope == Scope::Zone && !zone.zone_level_polled {
                    continue;
                }
                prefix.truncate(zone_len);
                push_label(prefix, "scope", scope.as_str());
                let count = i64::try_from(zone.certificate_count(scope)).unwrap_or(i64::MAX);
                push_sample(out, prefix, count);
            }
        });
        self.zones(&ZONE_POLL_SUCCESS, |out, prefix, zone| {
            // A zone not attempted yet has no outcome; after that, failures show as 0.
            if zone.last_attempt.is_some() {
                push_sample(out, prefix, i64::from(zone.poll_success));
            }
        });
        self.zones(&ZONE_LAST_SUCCESS, |out, prefix, zone| {
            if let Some(last_success) = zone.last_success {
                push_sample(out, prefix, last_success.timestamp());
            }
        });
        self.zones(&ZONE_OLDEST_REFRESH, |out, prefix, zone| {
            if let Some(oldest) = zone.oldest_refresh {
                push_sample(out, prefix, oldest.timestamp());
            }
        });
    }

    /// One family with series per certificate; `series` gets the prefix
    /// `name{zone_id,zone,scope,cert_id` and may append labels to it.
    fn certificates(
        &mut self,
        family: &Family,
        series: impl FnMut(&mut String, &mut String, &CertificateState),
    ) {
        self.objects(family, series);
    }

    /// One family with series per hostname; prefix `name{zone_id,zone,hostname`.
    fn hostnames(
        &mut self,
        family: &Family,
        series: impl FnMut(&mut String, &mut String, &HostnameState),
    ) {
        self.objects(family, series);
    }

    /// One family with series per object of every zone, each with its own labels.
    fn objects<T: ZoneObject>(
        &mut self,
        family: &Family,
        mut series: impl FnMut(&mut String, &mut String, &T),
    ) {
        if self.excluded(family) {
            return;
        }
        self.begin_family(family);
        let snapshot = self.snapshot;
        for zone in snapshot.zones.values() {
            push_zone_labels(&mut self.prefix, family.name, zone);
            let zone_len = self.prefix.len();
            for object in T::of_zone(zone) {
                self.prefix.truncate(zone_len);
                object.push_labels(&mut self.prefix);
                series(self.out, &mut self.prefix, object);
                self.object_done();
            }
        }
        self.end_family();
    }

    /// One family with series per zone; prefix `name{zone_id,zone`.
    fn zones(
        &mut self,
        family: &Family,
        series: impl FnMut(&mut String, &mut String, &ZoneSnapshot),
    ) {
        self.objects(family, series);
    }

    /// Writes a family's HELP and TYPE (every snapshot family is a gauge, `StateSet`s included).
    fn begin_family(&mut self, family: &Family) {
        self.header_start = Some(self.out.len());
        self.out.push_str("# HELP ");
        self.out.push_str(family.name);
        self.out.push(' ');
        self.out.push_str(family.help);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(family.name);
        self.out.push_str(" gauge\n");
        self.series_start = self.out.len();
    }

    /// The per-credential families: `refresh_sweep_seconds` and `token_valid`, by `account`.
    fn account_families(&mut self) {
        let accounts = &self.snapshot.accounts;
        if !self.excluded(&REFRESH_SWEEP) {
            self.begin_family(&REFRESH_SWEEP);
            for (account, health) in accounts {
                if let Some(sweep) = health.sweep_seconds {
                    // Whole seconds, rounded up: an estimate, never shorter than it is.
                    #[allow(clippy::cast_possible_truncation)] // far below i64::MAX seconds
                    let seconds = sweep.ceil() as i64;
                    self.account_series(
                        &REFRESH_SWEEP,
                        account,
                        itoa::Buffer::new().format(seconds),
                    );
                }
            }
            self.end_family();
        }
        if !self.excluded(&TOKEN_VALID) {
            self.begin_family(&TOKEN_VALID);
            for (account, health) in accounts {
                if let Some(valid) = health.token_valid {
                    self.account_series(&TOKEN_VALID, account, if valid { "1" } else { "0" });
                }
            }
            self.end_family();
        }
    }

    /// `name{account="…"} value`.
    fn account_series(&mut self, family: &Family, account: &str, value: &str) {
        self.out.push_str(family.name);
        self.out.push_str("{account=\"");
        push_escaped(self.out, account);
        self.out.push_str("\"} ");
        self.out.push_str(value);
        self.out.push('\n');
    }

    /// Drops the header again if the family had no series, so empty families do not appear.
    fn end_family(&mut self) {
        if let Some(header_start) = self.header_start.take() {
            if self.out.len() == self.series_start {
                self.out.truncate(header_start);
            }
        }
    }

    /// Called after each object: hands over the chunk once it is full. Only when it holds a
    /// series of the current family, so a header never leaves without one.
    fn object_done(&mut self) {
        let Some(chunking) = &mut self.chunking else {
            return;
        };
        if self.out.len() >= chunking.chunk_len && self.out.len() > self.series_start {
            let full = std::mem::replace(self.out, chunk_buffer(chunking.chunk_len));
            (chunking.emit)(full);
            self.header_start = None;
            self.series_start = 0;
        }
    }
}

/// An object with series of its own: a certificate or a hostname of a zone, or the zone.
trait ZoneObject: 'static {
    /// The zone's objects of this kind.
    fn of_zone(zone: &ZoneSnapshot) -> impl Iterator<Item = &Self>;
    /// Appends the labels naming the object (after the zone's).
    fn push_labels(&self, prefix: &mut String);
}

impl ZoneObject for CertificateState {
    fn of_zone(zone: &ZoneSnapshot) -> impl Iterator<Item = &Self> {
        zone.certificates.values()
    }

    fn push_labels(&self, prefix: &mut String) {
        push_label(prefix, "scope", self.scope.as_str());
        push_label(prefix, "cert_id", &self.id);
    }
}

impl ZoneObject for ZoneSnapshot {
    fn of_zone(zone: &ZoneSnapshot) -> impl Iterator<Item = &Self> {
        std::iter::once(zone)
    }

    /// The zone's own labels are all it has.
    fn push_labels(&self, _prefix: &mut String) {}
}

impl ZoneObject for HostnameState {
    fn of_zone(zone: &ZoneSnapshot) -> impl Iterator<Item = &Self> {
        zone.hostnames.values()
    }

    fn push_labels(&self, prefix: &mut String) {
        push_label(prefix, "hostname", &self.hostname);
    }
}

/// The API's value, else the PEM's, else empty: `certificate_info` always has every label.
fn api_or_pem<'a>(api: Option<&'a str>, pem: Option<&'a str>) -> &'a str {
    match api {
        // An empty API field says no more than a missing one.
        Some(value) if !value.is_empty() => value,
        _ => pem.unwrap_or(""),
    }
}

/// Starts a series prefix: `name{zone_id="…",zone="…"` (replacing what `prefix` held).
fn push_zone_labels(prefix: &mut String, name: &str, zone: &ZoneSnapshot) {
    prefix.clear();
    prefix.push_str(name);
    prefix.push_str("{zone_id=\"");
    push_escaped(prefix, &zone.zone_id);
    prefix.push_str("\",zone=\"");
    push_escaped(prefix, &zone.zone_name);
    prefix.push('"');
}

/// Appends `,name="value"` (escaped) to a series prefix.
fn push_label(prefix: &mut String, name: &str, value: &str) {
    prefix.push(',');
    prefix.push_str(name);
    prefix.push_str("=\"");
    push_escaped(prefix, value);
    prefix.push('"');
}

/// One series: the prefix `name{labels`, then `} value`.
pub(super) fn push_sample(out: &mut String, prefix: &str, value: i64) {
    out.push_str(prefix);
    out.push_str("} ");
    out.push_str(itoa::Buffer::new().format(value));
    out.push('\n');
}

/// The line endings of a `StateSet`'s series, per value in the producer's order:
/// `(value, [ending when 0, ending when 1])`. Built once, so each of the ~180,000 `StateSet`
/// lines at full scale is two copies.
type StateSetEndings<T> = Vec<(T, [String; 2])>;

fn state_set_endings<T: Into<&'static str> + Copy>(
    label: &str,
    values: impl Iterator<Item = T>,
) -> StateSetEndings<T> {
    values
        .map(|value| {
            let spelled: &str = value.into();
            let ending = |sample: u8| format!(",{label}=\"{spelled}\"}} {sample}\n");
            (value, [ending(0), ending(1)])
        })
        .collect()
}

/// Endings of `status` series, in [`Status`] order.
pub(super) static STATUS_ENDINGS: LazyLock<StateSetEndings<Status>> =
    LazyLock::new(|| state_set_endings("status", Status::iter()));

/// Endings of `state` series, in [`AssociationState`] order.
pub(super) static ASSOCIATION_ENDINGS: LazyLock<StateSetEndings<AssociationState>> =
    LazyLock::new(|| state_set_endings("state", AssociationState::iter()));

/// The series of a `StateSet`: the prefix `name{labels`, then each value's ending; with
/// [`StateSets::Current`] only the current value's.
fn push_state_set<T: PartialEq + Copy>(
    out: &mut String,
    prefix: &str,
    endings: &[(T, [String; 2])],
    current: T,
    statesets: StateSets,
) {
    for (value, ending) in endings {
        let is_current = *value == current;
        if is_current || statesets == StateSets::Full {
            out.push_str(prefix);
            out.push_str(&ending[usize::from(is_current)]);
        }
    }
}

/// The series of a `status` `StateSet` (8, or 1 with [`StateSets::Current`]).
fn push_status_set(out: &mut String, prefix: &str, current: Status, statesets: StateSets) {
    push_state_set(out, prefix, &STATUS_ENDINGS, current, statesets);
}

/// Appends a label value escaped as the text format requires (`\\`, `\"`, `\n`).
fn push_escaped(out: &mut String, value: &str) {
    // Label values almost never need escaping: copy them whole when they do not.
    if !value
        .bytes()
        .any(|byte| matches!(byte, b'\\' | b'"' | b'\n'))
    {
        out.push_str(value);
        return;
    }
    for character in value.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
}

/// A rough upper bound of the rendered size, so the output grows at most once or twice.
fn estimated_len(snapshot: &Snapshot) -> usize {
    let mut len = 4096;
    for zone in snapshot.zones.values() {
        let zone_labels = zone.zone_id.len() + zone.zone_name.len();
        len += LINES_PER_ZONE * (LINE_OVERHEAD + zone_labels);
        len += zone.certificates.len() * LINES_PER_CERTIFICATE * (LINE_OVERHEAD + zone_labels + 40);
        len += zone.hostnames.len() * LINES_PER_HOSTNAME * (LINE_OVERHEAD + zone_labels + 70);
    }
    len
}
