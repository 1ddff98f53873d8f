//! The simulator's certificates: generated with rcgen and signed by a small per-issuer CA, and
//! the API fields Cloudflare derives from a PEM (issuer, serial number, signature, notAfter).
//!
//! Generation is ECDSA or Ed25519 only (ring cannot generate RSA keys); weak RSA certificates
//! come from fixture PEMs. Keys are made once per algorithm and reused: the exporter looks at
//! key sizes, never at key material, and this keeps a 2,000-certificate scenario fast to start.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, SignatureAlgorithm,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x509_parser::oid_registry::{
    OID_PKCS1_MD5WITHRSAENC, OID_PKCS1_SHA1WITHRSA, OID_PKCS1_SHA256WITHRSA,
    OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA256,
    OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ECDSA_WITH_SHA512, OID_SIG_ED25519,
};
use x509_parser::prelude::{X509Certificate, X509Name};

/// The issuer of generated certificates when a scenario names none.
pub const DEFAULT_ISSUER: &str = "Cloudflare AOP Simulator CA";

/// Key (and signature) algorithm of a generated certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// ECDSA P-256, signed ECDSA-with-SHA256.
    #[default]
    EcdsaP256,
    /// ECDSA P-384, signed ECDSA-with-SHA384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

impl KeyKind {
    fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyKind::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyKind::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyKind::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// Why a certificate could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused the parameters or could not sign.
    #[error("rcgen: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// X.509 cannot hold this instant here (before 1970).
    #[error("{0} is before 1970")]
    TimeOutOfRange(DateTime<Utc>),
}

/// What a generated certificate should look like.
#[derive(Debug, Clone)]
pub struct CertRequest<'a> {
    /// Subject CN; also the DNS SAN when it looks like a hostname.
    pub common_name: &'a str,
    /// notBefore.
    pub not_before: DateTime<Utc>,
    /// notAfter.
    pub not_after: DateTime<Utc>,
    /// Key algorithm (the issuing CA uses the same one, so it sets the signature too).
    pub key: KeyKind,
    /// clientAuth EKU (else serverAuth only).
    pub client_auth: bool,
    /// Issuer CN and O.
    pub issuer: &'a str,
    /// Hashed into the serial number, so serials are stable across simulator runs.
    pub serial_seed: &'a str,
}

/// Makes certificates; CAs and leaf keys are created on first use and kept.
#[derive(Default)]
pub struct CertFactory {
    issuers: HashMap<(String, KeyKind), Issuer<'static, KeyPair>>,
    leaf_keys: HashMap<KeyKind, KeyPair>,
}

impl std::fmt::Debug for CertFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertFactory")
            .field("issuers", &self.issuers.len())
            .finish_non_exhaustive()
    }
}

impl CertFactory {
    /// A PEM certificate for `request`, signed by the CA named `request.issuer`.
    pub fn generate(&mut self, request: &CertRequest<'_>) -> Result<String, CertError> {
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, request.common_name);
        params.distinguished_name = subject;
        if looks_like_hostname(request.common_name) {
            params.subject_alt_names = vec![SanType::DnsName(request.common_name.try_into()?)];
        }
        params.not_before = rcgen::date_time_ymd(1970, 1, 1) + epoch_seconds(request.not_before)?;
        params.not_after = rcgen::date_time_ymd(1970, 1, 1) + epoch_seconds(request.not_after)?;
        params.serial_number = Some(serial_from_seed(request.serial_seed));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![if request.client_auth {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        params.use_authority_key_identifier_extension = true;

        let leaf_key = match self.leaf_keys.entry(request.key) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(KeyPair::generate_for(request.key.algorithm())?),
        };
        let issuer = match self.issuers.entry((request.issuer.to_owned(), request.key)) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(new_issuer(request.issuer, request.key)?),
        };
        Ok(params.signed_by(leaf_key, issuer)?.pem())
    }
}

/// A simulator CA named `name` (CN and O), with a `key` key.
fn new_issuer(name: &str, key: KeyKind) -> Result<Issuer<'static, KeyPair>, CertError> {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name);
    subject.push(DnType::OrganizationName, name);
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
    let ca_key = KeyPair::generate_for(key.algorithm())?;
    Ok(Issuer::new(params, ca_key))
}

/// The API fields Cloudflare derives from a certificate's PEM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PemFacts {
    /// Issuer O, else CN (`issuer`).
    pub issuer: Option<String>,
    /// Serial number in decimal (`serial_number`).
    pub serial_number: Option<String>,
    /// Signature algorithm in Cloudflare's (Go's) spelling, e.g. `SHA256WithRSA` (`signature`).
    pub signature: Option<String>,
    /// notBefore.
    pub not_before: Option<DateTime<Utc>>,
    /// notAfter (the API's default `expires_on`).
    pub not_after: Option<DateTime<Utc>>,
}

impl PemFacts {
    /// Reads the facts. A PEM that does not parse has none: Cloudflare would have refused it,
    /// the simulator serves it anyway so the exporter's `pem_parses` check can be tested.
    pub fn from_pem(pem: &str) -> PemFacts {
        let Ok((_, parsed_pem)) = x509_parser::pem::parse_x509_pem(pem.as_bytes()) else {
            return PemFacts::default();
        };
        let Ok(certificate) = parsed_pem.parse_x509() else {
            return PemFacts::default();
        };
        PemFacts::from_certificate(&certificate)
    }

    fn from_certificate(certificate: &X509Certificate<'_>) -> PemFacts {
        let validity = certificate.validity();
        PemFacts {
            issuer: issuer_name(certificate.issuer()),
            serial_number: Some(certificate.tbs_certificate.serial.to_string()),
            signature: Some(signature_name(certificate)),
            not_before: DateTime::from_timestamp(validity.not_before.timestamp(), 0),
            not_after: DateTime::from_timestamp(validity.not_after.timestamp(), 0),
        }
    }
}

fn issuer_name(name: &X509Name<'_>) -> Option<String> {
    name.iter_organization()
        .chain(name.iter_common_name())
        .find_map(|attribute| attribute.as_str().ok())
        .map(str::to_owned)
        .or_else(|| Some(name.to_string()).filter(|text| !text.is_empty()))
}

/// Go's `x509.SignatureAlgorithm` names, which is what Cloudflare's `signature` field shows.
fn signature_name(certificate: &X509Certificate<'_>) -> String {
    let oid = &certificate.signature_algorithm.algorithm;
    let known = [
        (&OID_PKCS1_MD5WITHRSAENC, "MD5WithRSA"),
        (&OID_PKCS1_SHA1WITHRSA, "SHA1WithRSA"),
        (&OID_PKCS1_SHA256WITHRSA, "SHA256WithRSA"),
        (&OID_PKCS1_SHA384WITHRSA, "SHA384WithRSA"),
        (&OID_PKCS1_SHA512WITHRSA, "SHA512WithRSA"),
        (&OID_SIG_ECDSA_WITH_SHA256, "ECDSAWithSHA256"),
        (&OID_SIG_ECDSA_WITH_SHA384, "ECDSAWithSHA384"),
        (&OID_SIG_ECDSA_WITH_SHA512, "ECDSAWithSHA512"),
        (&OID_SIG_ED25519, "PureEd25519"),
    ];
    known
        .iter()
        .find(|(known_oid, _)| *known_oid == oid)
        .map_or_else(|| oid.to_id_string(), |(_, name)| (*name).to_owned())
}

fn looks_like_hostname(name: &str) -> bool {
    name.contains('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'*'))
}

/// A positive 16-byte serial from a hash of `seed`.
fn serial_from_seed(seed: &str) -> SerialNumber {
    let digest = Sha256::digest(seed.as_bytes());
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // Top bit clear keeps the DER integer positive; 0x40 keeps it 16 bytes (no leading zero).
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// Seconds since the epoch, which rcgen's time type is built from (this keeps the `time`
/// crate out of our dependencies: `date_time_ymd` plus a duration needs no name for it).
fn epoch_seconds(at: DateTime<Utc>) -> Result<Duration, CertError> {
    u64::try_from(at.timestamp())
        .map(Duration::from_secs)
        .map_err(|_| CertError::TimeOutOfRange(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA1024_SHA1: &str = include_str!("../../scenarios/fixtures/rsa1024-sha1-client.pem");
    const RSA2048_SERVER: &str = include_str!("../../scenarios/fixtures/rsa2048-server-only.pem");

    #[test]
    fn fixture_facts_match_openssl() {
        let legacy = PemFacts::from_pem(RSA1024_SHA1);
        assert_eq!(legacy.issuer.as_deref(), Some("Example Legacy"));
        assert_eq!(legacy.signature.as_deref(), Some("SHA1WithRSA"));
        assert_eq!(
            legacy.not_after.map(|t| t.to_rfc3339()).as_deref(),
            Some("2036-11-20T13:57:42+00:00")
        );
        let server_only = PemFacts::from_pem(RSA2048_SERVER);
        assert_eq!(server_only.issuer.as_deref(), Some("Example Misissued"));
        assert_eq!(server_only.signature.as_deref(), Some("SHA256WithRSA"));
        assert!(
            server_only
                .serial_number
                .as_deref()
                .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()))
        );
    }

    #[test]
    fn garbage_has_no_facts() {
        assert_eq!(PemFacts::from_pem("not a certificate"), PemFacts::default());
        assert_eq!(
            PemFacts::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            PemFacts::default()
        );
    }

    #[test]
    fn generated_certificates_carry_the_requested_fields() {
        let mut factory = CertFactory::default();
        let not_before = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let not_after = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for (key, signature) in [
            (KeyKind::EcdsaP256, "ECDSAWithSHA256"),
            (KeyKind::EcdsaP384, "ECDSAWithSHA384"),
            (KeyKind::Ed25519, "PureEd25519"),
        ] {
            let pem = factory
                .generate(&CertRequest {
                    common_name: "origin-pull.example.com",
                    not_before,
                    not_after,
                    key,
                    client_auth: true,
                    issuer: "Example Origin CA",
                    serial_seed: "seed",
                })
                .unwrap();
            let facts = PemFacts::from_pem(&pem);
            assert_eq!(facts.signature.as_deref(), Some(signature));
            assert_eq!(facts.issuer.as_deref(), Some("Example Origin CA"));
            assert_eq!(facts.not_before, Some(not_before));
            assert_eq!(facts.not_after, Some(not_after));
            // Same seed, same serial: stable across runs.
            assert_eq!(facts.serial_number, PemFacts::from_pem(&pem).serial_number);
        }
    }
}
