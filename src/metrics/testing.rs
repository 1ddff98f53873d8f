//! Synthetic snapshots for tests and benchmarks of the `/metrics` rendering.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::state::{
    AssociationState, CertificateState, HostnameState, Scope, Snapshot, Status, ZoneSnapshot,
};
use crate::x509::{CertificateFacts, Check, KeyAlgorithm, PublicKeyInfo};

/// 2026-01-01T00:00:00Z: every synthetic timestamp is an offset from it.
const BASE_TIMESTAMP: i64 = 1_767_225_600;

/// A deterministic snapshot shaped like a real deployment: `zones` zones of
/// `hostnames_per_zone` monitored hostnames and `certificates_per_zone` certificates each
/// (every third one zone-level), with real-length labels (32-hex zone ids, UUID certificate
/// ids, `app-123.zone-45.example.com` hostnames), PEM facts, checks, and statuses and
/// association states spread over every value.
pub fn synthetic_snapshot(
    zones: usize,
    hostnames_per_zone: usize,
    certificates_per_zone: usize,
) -> Snapshot {
    let mut snapshot = Snapshot {
        completed_cycles: 1,
        generation: 1,
        ..Snapshot::default()
    };
    snapshot.accounts.insert(
        crate::config::DEFAULT_ACCOUNT.to_owned(),
        crate::state::AccountHealth {
            token_valid: Some(true),
            sweep_seconds: None,
        },
    );
    for zone_index in 0..zones {
        let zone = synthetic_zone(zone_index, hostnames_per_zone, certificates_per_zone);
        snapshot
            .zones
            .insert(zone.zone_id.clone(), std::sync::Arc::new(zone));
    }
    snapshot
}

fn synthetic_zone(
    zone_index: usize,
    hostnames_per_zone: usize,
    certificates_per_zone: usize,
) -> ZoneSnapshot {
    let zone_name = format!("zone-{zone_index}.example.com");
    let mut zone = ZoneSnapshot::new(hex32(zone_index as u64), zone_name.clone());
    let polled_at = at(3600);
    // One zone in 50 failed its last poll: its series are the last good ones.
    zone.poll_success = zone_index % 50 != 49;
    zone.last_attempt = Some(polled_at);
    zone.last_success = Some(if zone.poll_success { polled_at } else { at(0) });
    zone.zone_enabled = Some(zone_index % 10 != 0);
    zone.zone_level_polled = true;

    let mut hostname_certificates = Vec::new();
    let mut certificates = BTreeMap::new();
    for certificate_index in 0..certificates_per_zone {
        let serial = (zone_index * 1000 + certificate_index) as u64;
        let scope = if certificate_index % 3 == 2 {
            Scope::Zone
        } else {
            Scope::Hostname
        };
        let certificate = synthetic_certificate(serial, scope, &zone_name);
        if scope == Scope::Hostname {
            hostname_certificates.push(certificate.id.clone());
        }
        certificates.insert((scope, certificate.id.clone()), certificate);
    }

    for hostname_index in 0..hostnames_per_zone {
        let spread = zone_index + hostname_index;
        let association = AssociationState::ALL[spread % AssociationState::ALL.len()];
        let found = association != AssociationState::Absent;
        let cert_id = (found && !hostname_certificates.is_empty())
            .then(|| hostname_certificates[hostname_index % hostname_certificates.len()].clone());
        if let Some(cert_id) = &cert_id {
            if let Some(certificate) = certificates.get_mut(&(Scope::Hostname, cert_id.clone())) {
                certificate.monitored_hostnames += 1;
            }
        }
        let hostname = format!("app-{hostname_index}.{zone_name}");
        zone.hostnames.insert(
            hostname.clone(),
            HostnameState {
                hostname,
                source: crate::state::HostnameSource::Configured,
                association,
                status: found.then(|| Status::ALL[spread % Status::ALL.len()]),
                status_since: found.then(|| at(-86_400)),
                cert_status: cert_id
                    .as_ref()
                    .map(|_| Status::ALL[(spread + 3) % Status::ALL.len()]),
                cert_status_since: cert_id.as_ref().map(|_| at(-86_400)),
                cert_expires_on: cert_id.as_ref().map(|_| at(90 * 86_400)),
                cert_id,
                association_expires_on: None,
                refreshed_at: None,
                stale: false,
            },
        );
    }
    zone.certificates = certificates;
    zone
}

fn synthetic_certificate(serial: u64, scope: Scope, zone_name: &str) -> CertificateState {
    let not_after = at((90 + i64::from(u8::try_from(serial % 30).unwrap_or(0))) * 86_400);
    let facts = CertificateFacts {
        not_before: at(-86_400),
        not_after,
        subject: format!("CN=origin-pull-{serial}.{zone_name}, O=Example Inc"),
        issuer: "CN=Example Origin Pull CA, O=Example Inc".to_owned(),
        serial_hex: format!("{serial:016x}"),
        serial_decimal: (u128::from(serial) * 1_000_000_007).to_string(),
        subject_alt_names: vec![format!("origin-pull-{serial}.{zone_name}")],
        key: PublicKeyInfo {
            algorithm: KeyAlgorithm::Rsa,
            bits: Some(2048),
            curve: None,
        },
        signature_algorithm: "sha256WithRSAEncryption".to_owned(),
        extended_key_usage: Some(vec!["clientAuth".to_owned()]),
        sha256_fingerprint: format!("{}{}", hex32(serial), hex32(serial + 1)),
    };
    let status = Status::ALL[usize::try_from(serial).unwrap_or(0) % Status::ALL.len()];
    CertificateState {
        scope,
        id: uuid(serial),
        status: Some(status),
        status_since: Some(at(-3600)),
        api_expires_on: Some(not_after),
        uploaded_on: Some(at(-2 * 86_400)),
        // The API sends these for most certificates; some rely on the PEM fallback.
        issuer: (serial % 4 != 0).then(|| facts.issuer.clone()),
        serial_number: (serial % 4 != 0).then(|| facts.serial_decimal.clone()),
        signature: (serial % 4 != 0).then(|| facts.signature_algorithm.clone()),
        checks: Check::ALL
            .into_iter()
            .map(|check| (check, !(check == Check::KeyStrength && serial % 7 == 0)))
            .collect(),
        facts: Some(facts),
        pem_error: None,
        monitored_hostnames: 0,
    }
}

fn at(offset_seconds: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + TimeDelta::seconds(BASE_TIMESTAMP + offset_seconds)
}

/// `SplitMix64`: well-spread, deterministic bits from a counter.
fn mix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    value ^ (value >> 31)
}

/// 32 lowercase hex digits, like a Cloudflare zone id.
fn hex32(seed: u64) -> String {
    format!(
        "{:016x}{:016x}",
        mix(seed),
        mix(seed ^ 0x5555_5555_5555_5555)
    )
}

/// A version-4-shaped UUID, like a Cloudflare certificate id.
fn uuid(seed: u64) -> String {
    let high = mix(seed.wrapping_add(0x1234_5678));
    let low = mix(high);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xfff,
        low >> 52,
        low & 0xffff_ffff_ffff
    )
}
