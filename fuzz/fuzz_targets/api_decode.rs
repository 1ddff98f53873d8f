//! The API response decoding, from arbitrary bytes: the typed envelope of every endpoint (what
//! `Client::classify` decodes a 2xx body into), the failure path's `Envelope<IgnoredAny>`, and
//! for whatever decodes: the accessors, a serialize → deserialize round trip of every item,
//! `Status::parse`, and each item's PEM through `CertificateFacts::from_pem` and `run_checks`.
#![no_main]

use std::fmt::Debug;

use cloudflare_aop_exporter::cloudflare::types::{
    DnsRecord, Envelope, HostnameAssociation, HostnameCertificate, Status, TokenVerification,
    ZoneCertificate, ZoneSettings,
};
use cloudflare_aop_exporter::x509::{CertificateFacts, run_checks};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};

/// What the exporter keeps of an item survives a round trip through its own serialization
/// (the snapshot and state files are written that way).
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(item: &T) {
    let text = serde_json::to_string(item).expect("a decoded item serializes");
    let back: T = serde_json::from_str(&text).expect("a serialized item decodes");
    assert_eq!(&back, item, "the round trip changed the item: {text}");
}

fn pem_checks(pem: Option<&str>, expires_on: Option<chrono::DateTime<chrono::Utc>>) {
    if let Some(pem) = pem {
        let parsed = CertificateFacts::from_pem(pem);
        let checks = run_checks(Some(&parsed), expires_on);
        assert!(!checks.is_empty(), "a PEM body always reports pem_parses");
        if let Err(error) = &parsed {
            // Error text ends up in logs and the status page: bounded.
            assert!(error.to_string().len() < 4096);
        }
    }
}

fn envelope<T: DeserializeOwned>(data: &[u8]) -> Option<Envelope<T>> {
    let envelope = serde_json::from_slice::<Envelope<T>>(data).ok()?;
    for message in envelope.errors.iter().chain(&envelope.messages) {
        let _ = format!("{message:?}");
    }
    Some(envelope)
}

fn hostname_certificate(item: &HostnameCertificate) {
    let _ = item.certificate_id();
    if let Some(status) = item.certificate_status() {
        assert_eq!(Status::parse(status.as_str()), status);
    }
    let _ = item.certificate_uploaded_on();
    round_trip(item);
    pem_checks(item.certificate.as_deref(), item.expires_on);
}

fuzz_target!(|data: &[u8]| {
    // The failure path reads only `success` and `errors`, whatever the result holds.
    let _ = envelope::<IgnoredAny>(data);

    if let Some(list) = envelope::<Vec<HostnameCertificate>>(data) {
        for item in list.result.iter().flatten() {
            hostname_certificate(item);
        }
    }
    if let Some(one) = envelope::<HostnameCertificate>(data) {
        if let Some(item) = &one.result {
            hostname_certificate(item);
        }
    }
    if let Some(association) = envelope::<HostnameAssociation>(data) {
        if let Some(item) = &association.result {
            round_trip(item);
            pem_checks(item.certificate.as_deref(), item.expires_on);
        }
    }
    if let Some(list) = envelope::<Vec<ZoneCertificate>>(data) {
        for item in list.result.iter().flatten() {
            round_trip(item);
            pem_checks(item.certificate.as_deref(), item.expires_on);
        }
    }
    if let Some(settings) = envelope::<ZoneSettings>(data) {
        if let Some(item) = &settings.result {
            round_trip(item);
        }
    }
    if let Some(verification) = envelope::<TokenVerification>(data) {
        if let Some(item) = &verification.result {
            let _ = item.is_active();
            round_trip(item);
        }
    }
    if let Some(records) = envelope::<Vec<DnsRecord>>(data) {
        for item in records.result.iter().flatten() {
            round_trip(item);
        }
    }
});
