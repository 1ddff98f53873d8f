//! Cloudflare's answers → the domain snapshot, one fetched object at a time.
//!
//! Each function changes one zone's snapshot for one answer and keeps what is derived from
//! several objects (hostnames per certificate, a hostname's certificate expiry) consistent, so
//! the snapshot can be published after every answer.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use crate::cloudflare::types::{
    HostnameAssociation, HostnameCertificate, ZoneCertificate, ZoneSettings as ApiZoneSettings,
};
use crate::state::{
    AssociationState, CertificateState, HostnameSource, HostnameState, ObjectKey, Scope, Status,
    StatusHistory, ZoneSnapshot,
};
use crate::x509::{CertificateFacts, run_checks};

/// The hostname-certificate list arrived: it replaces the zone's per-hostname certificates,
/// except those fetched by id (an association names them, the list does not) that are still
/// named. Returns the ids the list carries.
pub(super) fn certificate_list(
    zone: &mut ZoneSnapshot,
    listed: &[HostnameCertificate],
    history: &mut StatusHistory,
    now: DateTime<Utc>,
) -> BTreeSet<String> {
    let mut certificates: BTreeMap<String, CertificateState> = BTreeMap::new();
    for fields in listed
        .iter()
        .filter_map(CertificateFields::from_hostname_certificate)
    {
        // Association-shaped lists repeat a certificate once per hostname: first wins.
        if !certificates.contains_key(fields.id) {
            let state = certificate_state(&zone.zone_id, Scope::Hostname, &fields, history, now);
            certificates.insert(fields.id.to_owned(), state);
        }
    }
    let listed_ids: BTreeSet<String> = certificates.keys().cloned().collect();
    let named: BTreeSet<&str> = zone
        .hostnames
        .values()
        .filter_map(|hostname| hostname.cert_id.as_deref())
        .collect();
    let fetched_by_id: Vec<CertificateState> = zone
        .certificates
        .iter()
        .filter(|((scope, id), _)| {
            *scope == Scope::Hostname && !listed_ids.contains(id) && named.contains(id.as_str())
        })
        .map(|(_, certificate)| certificate.clone())
        .collect();
    zone.certificates
        .retain(|(scope, _), _| *scope != Scope::Hostname);
    for certificate in certificates.into_values().chain(fetched_by_id) {
        zone.certificates
            .insert((Scope::Hostname, certificate.id.clone()), certificate);
    }
    derive(zone);
    retain_certificate_history(zone, Scope::Hostname, history);
    listed_ids
}

/// One certificate fetched by id (`None`: Cloudflare no longer has it).
pub(super) fn certificate_by_id(
    zone: &mut ZoneSnapshot,
    cert_id: &str,
    certificate: Option<&HostnameCertificate>,
    history: &mut StatusHistory,
    now: DateTime<Utc>,
) {
    let key = (Scope::Hostname, cert_id.to_owned());
    match certificate.and_then(CertificateFields::from_hostname_certificate) {
        Some(fields) => {
            let state = certificate_state(&zone.zone_id, Scope::Hostname, &fields, history, now);
            zone.certificates.insert(key, state);
        }
        None => {
            zone.certificates.remove(&key);
        }
    }
    derive(zone);
    retain_certificate_history(zone, Scope::Hostname, history);
}

/// The zone-level certificate list and setting arrived.
pub(super) fn zone_level(
    zone: &mut ZoneSnapshot,
    listed: &[ZoneCertificate],
    settings: ApiZoneSettings,
    history: &mut StatusHistory,
    now: DateTime<Utc>,
) {
    zone.zone_enabled = settings.enabled;
    zone.zone_level_polled = true;
    zone.certificates
        .retain(|(scope, _), _| *scope != Scope::Zone);
    for fields in listed
        .iter()
        .filter_map(CertificateFields::from_zone_certificate)
    {
        let key = (Scope::Zone, fields.id.to_owned());
        if !zone.certificates.contains_key(&key) {
            let state = certificate_state(&zone.zone_id, Scope::Zone, &fields, history, now);
            zone.certificates.insert(key, state);
        }
    }
    retain_certificate_history(zone, Scope::Zone, history);
}

/// One hostname's association arrived (`None`: Cloudflare answered 404, no association).
pub(super) fn association(
    zone: &mut ZoneSnapshot,
    hostname: &str,
    source: HostnameSource,
    association: Option<HostnameAssociation>,
    history: &mut StatusHistory,
    now: DateTime<Utc>,
) {
    let mut state = hostname_state(&zone.zone_id, hostname, association, history, now);
    state.source = source;
    zone.hostnames.insert(hostname.to_owned(), state);
    derive(zone);
}

/// Hostnames no longer watched (gone from discovery) leave the snapshot and the history.
pub(super) fn forget_hostnames(
    zone: &mut ZoneSnapshot,
    gone: &BTreeSet<String>,
    history: &mut StatusHistory,
) {
    zone.hostnames
        .retain(|hostname, _| !gone.contains(hostname));
    derive(zone);
    history.retain_zone(&zone.zone_id, |key| match key {
        ObjectKey::HostnameStatus { hostname, .. }
        | ObjectKey::HostnameCertStatus { hostname, .. } => !gone.contains(hostname),
        ObjectKey::Certificate { .. } => true,
    });
}

/// Recomputes what depends on several objects: monitored hostnames per certificate, and the
/// expiry of the certificate serving each hostname.
fn derive(zone: &mut ZoneSnapshot) {
    let mut monitored: HashMap<String, u32> = HashMap::new();
    for hostname in zone.hostnames.values() {
        if matches!(
            hostname.association,
            AssociationState::Enabled | AssociationState::Disabled
        ) {
            if let Some(cert_id) = &hostname.cert_id {
                *monitored.entry(cert_id.clone()).or_default() += 1;
            }
        }
    }
    for ((scope, id), certificate) in &mut zone.certificates {
        if *scope == Scope::Hostname {
            certificate.monitored_hostnames = monitored.get(id).copied().unwrap_or(0);
        }
    }
    let certificates = &zone.certificates;
    for hostname in zone.hostnames.values_mut() {
        let serving = hostname
            .cert_id
            .as_ref()
            .and_then(|cert_id| certificates.get(&(Scope::Hostname, cert_id.clone())));
        hostname.cert_expires_on = hostname
            .association_expires_on
            .or_else(|| serving.and_then(CertificateState::expires_at));
    }
}

/// Forgets the status history of `scope`'s certificates the zone no longer has (other
/// objects' history stays: they may simply not have been fetched since a restart).
fn retain_certificate_history(zone: &ZoneSnapshot, scope: Scope, history: &mut StatusHistory) {
    history.retain_zone(&zone.zone_id, |key| match key {
        ObjectKey::Certificate {
            scope: key_scope,
            id,
            ..
        } => *key_scope != scope || zone.certificates.contains_key(&(scope, id.clone())),
        ObjectKey::HostnameStatus { .. } | ObjectKey::HostnameCertStatus { .. } => true,
    });
}

/// The API's view of one certificate, whichever endpoint it came from.
struct CertificateFields<'a> {
    id: &'a str,
    pem: Option<&'a str>,
    status: Option<Status>,
    expires_on: Option<DateTime<Utc>>,
    uploaded_on: Option<DateTime<Utc>>,
    issuer: Option<&'a str>,
    serial_number: Option<&'a str>,
    signature: Option<&'a str>,
}

impl<'a> CertificateFields<'a> {
    fn from_hostname_certificate(item: &'a HostnameCertificate) -> Option<Self> {
        Some(CertificateFields {
            id: item.certificate_id()?,
            pem: item.certificate.as_deref(),
            status: item.certificate_status(),
            expires_on: item.expires_on,
            uploaded_on: item.certificate_uploaded_on(),
            issuer: item.issuer.as_deref(),
            serial_number: item.serial_number.as_deref(),
            signature: item.signature.as_deref(),
        })
    }

    fn from_zone_certificate(item: &'a ZoneCertificate) -> Option<Self> {
        Some(CertificateFields {
            id: item.id.as_deref()?,
            pem: item.certificate.as_deref(),
            status: item.status,
            expires_on: item.expires_on,
            uploaded_on: item.uploaded_on,
            issuer: item.issuer.as_deref(),
            serial_number: item.serial_number.as_deref(),
            signature: item.signature.as_deref(),
        })
    }
}

fn certificate_state(
    zone_id: &str,
    scope: Scope,
    fields: &CertificateFields<'_>,
    history: &mut StatusHistory,
    now: DateTime<Utc>,
) -> CertificateState {
    let parsed = fields.pem.map(CertificateFacts::from_pem);
    let checks = run_checks(parsed.as_ref(), fields.expires_on);
    let status_since = fields.status.map(|status| {
        history.observe(
            ObjectKey::Certificate {
                zone_id: zone_id.to_owned(),
                scope,
                id: fields.id.to_owned(),
            },
            status,
            now,
        )
    });
    let (facts, pem_error) = match parsed {
        Some(Ok(facts)) => (Some(facts), None),
        Some(Err(error)) => {
            tracing::warn!(zone_id, cert_id = fields.id, error = %error, "certificate PEM does not parse");
            (None, Some(error.to_string()))
        }
        None => (None, None),
    };
    CertificateState {
        scope,
        id: fields.id.to_owned(),
        status: fields.status,
        status_since,
        api_expires_on: fields.expires_on,
        uploaded_on: fields.uploaded_on,
        issuer: fields.issuer.map(str::to_owned),
        serial_number: fields.serial_number.map(str::to_owned),
        signature: fields.signature.map(str::to_owned),
        facts,
        pem_error,
        checks,
        monitored_hostnames: 0,
    }
}

fn hostname_state(
    zone_id: &str,
    hostname: &str,
    association: Option<HostnameAssociation>,
    history: &mut StatusHistory,
    now: DateTime<Utc>,
) -> HostnameState {
    let state = AssociationState::from_enabled(
        association.is_some(),
        association.as_ref().and_then(|a| a.enabled),
    );
    let association = association.unwrap_or_default();
    let first_seen = association.status.map(|status| {
        history.observe(
            ObjectKey::HostnameStatus {
                zone_id: zone_id.to_owned(),
                hostname: hostname.to_owned(),
            },
            status,
            now,
        )
    });
    let cert_status_since = association.cert_status.map(|status| {
        history.observe(
            ObjectKey::HostnameCertStatus {
                zone_id: zone_id.to_owned(),
                hostname: hostname.to_owned(),
            },
            status,
            now,
        )
    });
    HostnameState {
        hostname: hostname.to_owned(),
        source: HostnameSource::default(),
        association: state,
        status: association.status,
        status_since: association
            .status
            .and(association.updated_at.or(first_seen)),
        cert_id: association.cert_id,
        cert_status: association.cert_status,
        cert_status_since,
        cert_expires_on: association.expires_on,
        association_expires_on: association.expires_on,
        refreshed_at: Some(now),
        stale: false,
    }
}
