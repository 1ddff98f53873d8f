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

#[cfg(test)]
mod tests {
    //! API answers (as Cloudflare sends them, decoded by the client's DTOs) → snapshot fields.

    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    const ZONE: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn decode<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).expect("the answer decodes")
    }

    fn zone() -> ZoneSnapshot {
        ZoneSnapshot::new(ZONE, "example.com")
    }

    fn hostname_certificate<'a>(zone: &'a ZoneSnapshot, id: &str) -> &'a CertificateState {
        &zone.certificates[&(Scope::Hostname, id.to_owned())]
    }

    /// Applies one hostname's association answer (`None`: 404) to `zone`.
    fn apply_association(
        zone: &mut ZoneSnapshot,
        hostname: &str,
        answer: Option<serde_json::Value>,
        history: &mut StatusHistory,
    ) {
        association(
            zone,
            hostname,
            HostnameSource::Configured,
            answer.map(decode),
            history,
            now(),
        );
    }

    #[test]
    fn a_listed_certificate_maps_every_field_and_drops_what_it_does_not_know() {
        let listed: Vec<HostnameCertificate> = decode(json!([{
            "id": "2458ce5a-0c35-4c7f-82c7-8e9487d3ff60",
            "status": "pending_deployment",
            "expires_on": "2026-06-01T00:00:00Z",
            "uploaded_on": "2025-12-01T10:00:00Z",
            "issuer": "GlobalSign",
            "serial_number": "6743787633689793699141714808227354901",
            "signature": "SHA256WithRSA",
            "private_key": "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n",
            "a_field_added_later": {"nested": true}
        }]));
        let mut zone = zone();
        let mut history = StatusHistory::default();
        let ids = certificate_list(&mut zone, &listed, &mut history, now());

        assert_eq!(
            ids,
            BTreeSet::from(["2458ce5a-0c35-4c7f-82c7-8e9487d3ff60".to_owned()])
        );
        let certificate = hostname_certificate(&zone, "2458ce5a-0c35-4c7f-82c7-8e9487d3ff60");
        assert_eq!(certificate.scope, Scope::Hostname);
        assert_eq!(certificate.status, Some(Status::PendingDeployment));
        assert_eq!(certificate.status_since, Some(now()), "first seen now");
        assert_eq!(certificate.api_expires_on, Some(at("2026-06-01T00:00:00Z")));
        assert_eq!(certificate.expires_at(), Some(at("2026-06-01T00:00:00Z")));
        assert_eq!(certificate.uploaded_on, Some(at("2025-12-01T10:00:00Z")));
        assert_eq!(certificate.issuer.as_deref(), Some("GlobalSign"));
        assert_eq!(
            certificate.serial_number.as_deref(),
            Some("6743787633689793699141714808227354901")
        );
        assert_eq!(certificate.signature.as_deref(), Some("SHA256WithRSA"));
        assert!(certificate.facts.is_none(), "no PEM, no facts");
        assert_eq!(certificate.pem_error, None, "no PEM is not a PEM error");
        assert_eq!(certificate.monitored_hostnames, 0);
        assert!(
            !format!("{zone:?}").contains("PRIVATE KEY"),
            "the private key is dropped"
        );
    }

    #[test]
    fn association_shaped_items_give_cert_id_and_cert_status_and_the_first_wins() {
        let listed: Vec<HostnameCertificate> = decode(json!([
            {
                "hostname": "app.example.com",
                "cert_id": "cert-a",
                "cert_status": "active",
                "status": "pending_deployment",
                "cert_uploaded_on": "2025-11-01T00:00:00Z",
                "enabled": true
            },
            {"hostname": "api.example.com", "cert_id": "cert-a", "cert_status": "deleted"}
        ]));
        let mut zone = zone();
        let ids = certificate_list(&mut zone, &listed, &mut StatusHistory::default(), now());

        assert_eq!(ids, BTreeSet::from(["cert-a".to_owned()]));
        let certificate = hostname_certificate(&zone, "cert-a");
        assert_eq!(
            certificate.status,
            Some(Status::Active),
            "cert_status over status"
        );
        assert_eq!(certificate.uploaded_on, Some(at("2025-11-01T00:00:00Z")));
    }

    #[test]
    fn unknown_statuses_parse_and_items_without_an_id_are_skipped() {
        let listed: Vec<HostnameCertificate> = decode(json!([
            {"id": "cert-new", "status": "quarantined"},
            {"id": "cert-bare"},
            {"status": "active"},
            {"id": "", "status": "active"},
            {"id": "cert-null", "status": "active", "issuer": null, "expires_on": null}
        ]));
        let mut zone = zone();
        let mut history = StatusHistory::default();
        let ids = certificate_list(&mut zone, &listed, &mut history, now());

        assert_eq!(
            ids,
            BTreeSet::from([
                "cert-bare".to_owned(),
                "cert-new".to_owned(),
                "cert-null".to_owned()
            ])
        );
        assert_eq!(
            hostname_certificate(&zone, "cert-new").status,
            Some(Status::Unknown)
        );
        let bare = hostname_certificate(&zone, "cert-bare");
        assert_eq!(bare.status, None);
        assert_eq!(bare.status_since, None, "no status, no history");
        assert_eq!(bare.expires_at(), None, "unknown expiry stays unknown");
        let nulls = hostname_certificate(&zone, "cert-null");
        assert_eq!(nulls.issuer, None);
        assert_eq!(nulls.api_expires_on, None);
        assert_eq!(history.len(), 2, "history for the two with a status");
    }

    #[test]
    fn a_pem_that_does_not_parse_is_recorded_not_fatal() {
        let listed: Vec<HostnameCertificate> = decode(json!([{
            "id": "cert-garbage",
            "status": "active",
            "certificate": "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
        }]));
        let mut zone = zone();
        certificate_list(&mut zone, &listed, &mut StatusHistory::default(), now());

        let certificate = hostname_certificate(&zone, "cert-garbage");
        assert!(certificate.facts.is_none());
        assert!(certificate.pem_error.is_some());
        assert_eq!(certificate.status, Some(Status::Active));
    }

    #[test]
    fn an_association_answer_gives_its_state_status_certificate_and_expiry() {
        let mut zone = zone();
        let mut history = StatusHistory::default();
        apply_association(
            &mut zone,
            "app.example.com",
            Some(json!({
                "hostname": "app.example.com",
                "cert_id": "cert-a",
                "cert_status": "deployment_timed_out",
                "status": "active",
                "enabled": true,
                "expires_on": "2026-05-01T00:00:00Z",
                "updated_at": "2025-12-24T12:00:00Z",
                "a_field_added_later": 1
            })),
            &mut history,
        );

        let hostname = &zone.hostnames["app.example.com"];
        assert_eq!(hostname.association, AssociationState::Enabled);
        assert_eq!(hostname.source, HostnameSource::Configured);
        assert_eq!(hostname.status, Some(Status::Active));
        assert_eq!(
            hostname.status_since,
            Some(at("2025-12-24T12:00:00Z")),
            "updated_at when Cloudflare sends it"
        );
        assert_eq!(hostname.cert_id.as_deref(), Some("cert-a"));
        assert_eq!(hostname.cert_status, Some(Status::DeploymentTimedOut));
        assert_eq!(hostname.cert_status_since, Some(now()));
        assert_eq!(
            hostname.association_expires_on,
            Some(at("2026-05-01T00:00:00Z"))
        );
        assert_eq!(hostname.cert_expires_on, Some(at("2026-05-01T00:00:00Z")));
        assert_eq!(hostname.refreshed_at, Some(now()));
        assert!(!hostname.stale);
    }

    #[test]
    fn enabled_true_false_null_missing_and_404_are_the_five_association_states() {
        let mut zone = zone();
        let mut history = StatusHistory::default();
        for (hostname, answer) in [
            ("on.example.com", Some(json!({"enabled": true}))),
            ("off.example.com", Some(json!({"enabled": false}))),
            ("voided.example.com", Some(json!({"enabled": null}))),
            ("missing.example.com", Some(json!({"status": "active"}))),
            ("absent.example.com", None),
        ] {
            apply_association(&mut zone, hostname, answer, &mut history);
        }
        let states: Vec<(&str, AssociationState)> = zone
            .hostnames
            .iter()
            .map(|(name, hostname)| (name.as_str(), hostname.association))
            .collect();
        assert_eq!(
            states,
            [
                ("absent.example.com", AssociationState::Absent),
                ("missing.example.com", AssociationState::Voided),
                ("off.example.com", AssociationState::Disabled),
                ("on.example.com", AssociationState::Enabled),
                ("voided.example.com", AssociationState::Voided),
            ]
        );
        let absent = &zone.hostnames["absent.example.com"];
        assert_eq!(absent.status, None);
        assert_eq!(absent.status_since, None);
        assert_eq!(absent.cert_id, None);
        assert_eq!(
            zone.hostnames["missing.example.com"].status_since,
            Some(now()),
            "no updated_at: first seen"
        );
    }

    #[test]
    fn hostnames_count_toward_their_certificate_and_take_its_expiry() {
        let listed: Vec<HostnameCertificate> = decode(json!([
            {"id": "cert-a", "status": "active", "expires_on": "2026-04-01T00:00:00Z"}
        ]));
        let mut zone = zone();
        let mut history = StatusHistory::default();
        certificate_list(&mut zone, &listed, &mut history, now());
        for (hostname, enabled) in [
            ("on.example.com", json!(true)),
            ("off.example.com", json!(false)),
            ("voided.example.com", json!(null)),
        ] {
            apply_association(
                &mut zone,
                hostname,
                Some(json!({"cert_id": "cert-a", "enabled": enabled})),
                &mut history,
            );
        }

        assert_eq!(
            hostname_certificate(&zone, "cert-a").monitored_hostnames,
            2,
            "enabled and disabled count, voided does not"
        );
        for hostname in zone.hostnames.values() {
            assert_eq!(
                hostname.cert_expires_on,
                Some(at("2026-04-01T00:00:00Z")),
                "{}: the serving certificate's expiry",
                hostname.hostname
            );
            assert_eq!(hostname.association_expires_on, None);
        }
    }

    #[test]
    fn zone_level_answers_set_the_setting_and_the_zone_scope_certificates() {
        let listed: Vec<ZoneCertificate> = decode(json!([
            {"id": "zone-cert", "status": "active", "expires_on": "2027-01-01T00:00:00Z",
             "private_key": "secret"},
            {"status": "active"}
        ]));
        let mut zone = zone();
        zone_level(
            &mut zone,
            &listed,
            decode(json!({"enabled": true, "a_field_added_later": "x"})),
            &mut StatusHistory::default(),
            now(),
        );

        assert_eq!(zone.zone_enabled, Some(true));
        assert!(zone.zone_level_polled);
        let keys: Vec<&(Scope, String)> = zone.certificates.keys().collect();
        assert_eq!(keys, [&(Scope::Zone, "zone-cert".to_owned())]);
        let certificate = &zone.certificates[&(Scope::Zone, "zone-cert".to_owned())];
        assert_eq!(certificate.status, Some(Status::Active));
        assert_eq!(certificate.api_expires_on, Some(at("2027-01-01T00:00:00Z")));

        let mut unknown = self::zone();
        zone_level(
            &mut unknown,
            &[],
            decode(json!({})),
            &mut StatusHistory::default(),
            now(),
        );
        assert_eq!(unknown.zone_enabled, None, "no enabled field: unknown");
    }

    #[test]
    fn a_certificate_cloudflare_no_longer_has_leaves_the_snapshot() {
        let mut zone = zone();
        let mut history = StatusHistory::default();
        let fetched: HostnameCertificate = decode(json!({"id": "cert-b", "status": "active"}));
        certificate_by_id(&mut zone, "cert-b", Some(&fetched), &mut history, now());
        assert_eq!(
            hostname_certificate(&zone, "cert-b").status,
            Some(Status::Active)
        );

        certificate_by_id(&mut zone, "cert-b", None, &mut history, now());
        assert!(zone.certificates.is_empty());
        assert_eq!(history.len(), 0, "its history goes with it");
    }
}
