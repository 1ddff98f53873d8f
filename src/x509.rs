//! PEM → domain facts about one client certificate, and the `certificate_check` checks of the
//! README's "Metrics" table (`pem_parses`, `client_auth_usage`, `key_strength`,
//! `signature_algorithm`, `expiry_matches_api`).
//!
//! Everything here is pure: the poller parses each certificate body once per cycle with
//! [`CertificateFacts::from_pem`] and hands the result to [`run_checks`].

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use strum::VariantArray as _;
use x509_parser::asn1_rs::Tag;
use x509_parser::asn1_rs::oid;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::der::parse_der_integer;
use x509_parser::extensions::{ExtendedKeyUsage, GeneralName};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_HASH_SHA1, OID_KEY_TYPE_DSA, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384,
    OID_NIST_EC_P521, OID_NIST_HASH_SHA256, OID_NIST_HASH_SHA384, OID_NIST_HASH_SHA512,
    OID_PKCS1_MD2WITHRSAENC, OID_PKCS1_MD4WITHRSAENC, OID_PKCS1_MD5WITHRSAENC,
    OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS, OID_PKCS1_SHA1WITHRSA, OID_PKCS1_SHA224WITHRSA,
    OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA, OID_SHA1_WITH_RSA,
    OID_SIG_DSA_WITH_SHA1, OID_SIG_ECDSA_WITH_SHA224, OID_SIG_ECDSA_WITH_SHA256,
    OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ECDSA_WITH_SHA512, OID_SIG_ED448, OID_SIG_ED25519, Oid,
};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::RSAPublicKey;
use x509_parser::signature_algorithm::RsaSsaPssParams;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

/// How far the API's `expires_on` may be from the PEM's notAfter and still count as the same
/// expiry: Cloudflare may round or re-format the timestamp it reports, so exact equality
/// would flag healthy certificates; a real mismatch (a different certificate) is off by days.
pub const EXPIRY_TOLERANCE: TimeDelta = TimeDelta::seconds(60);

/// Why a certificate body could not be turned into [`CertificateFacts`].
///
/// Messages never quote the PEM body: it is user data and can be large.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X509Error {
    /// The body is empty or only whitespace.
    #[error("certificate body is empty")]
    Empty,
    /// No complete `-----BEGIN …-----` / `-----END …-----` block was found.
    #[error("certificate body is not PEM (no complete BEGIN/END block)")]
    NotPem,
    /// The body holds PEM blocks, but none labelled `CERTIFICATE`.
    #[error("PEM block is labelled {0:?}, expected \"CERTIFICATE\"")]
    WrongLabel(String),
    /// The text between BEGIN and END is not valid base64.
    #[error("certificate PEM body is not valid base64")]
    Base64,
    /// The decoded bytes are not a well-formed X.509 certificate.
    #[error("certificate DER does not parse: {0}")]
    Der(String),
}

/// Public key algorithm of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyAlgorithm {
    /// RSA (`rsaEncryption` or an RSASSA-PSS-restricted key).
    Rsa,
    /// Elliptic curve (`id-ecPublicKey`, ECDSA).
    Ec,
    /// `EdDSA` over Curve25519.
    Ed25519,
    /// `EdDSA` over Curve448.
    Ed448,
    /// DSA.
    Dsa,
    /// Anything else, as its dotted OID.
    Other(String),
}

/// The subject public key of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyInfo {
    /// Which algorithm the key is for.
    pub algorithm: KeyAlgorithm,
    /// Key size as usually quoted: RSA/DSA modulus bits, EC curve bits, 256 for Ed25519,
    /// 448 for Ed448. `None` when it cannot be told (unknown curve or algorithm).
    pub bits: Option<u32>,
    /// EC curve, by its NIST name where it has one (`P-256`), else its usual name or dotted OID.
    pub curve: Option<String>,
}

/// Facts read from one certificate PEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateFacts {
    /// Start of validity (notBefore).
    pub not_before: DateTime<Utc>,
    /// End of validity (notAfter).
    pub not_after: DateTime<Utc>,
    /// Subject as x509-parser formats it, in certificate order: `CN=origin-pull.example.com, O=Example`.
    pub subject: String,
    /// Issuer, formatted like `subject`.
    pub issuer: String,
    /// Serial number in lowercase hex, no colons, whole bytes (as `openssl x509 -serial` prints it).
    pub serial_hex: String,
    /// Serial number in decimal, as Cloudflare's API reports `serial_number`.
    pub serial_decimal: String,
    /// Subject alternative names: DNS names, IP addresses, e-mail addresses and URIs.
    pub subject_alt_names: Vec<String>,
    /// The subject public key.
    pub key: PublicKeyInfo,
    /// Signature algorithm by name (OpenSSL's: `sha256WithRSAEncryption`, `ecdsa-with-SHA256`);
    /// RSASSA-PSS carries its hash (`rsassaPss-sha256`); unknown algorithms are the dotted OID.
    pub signature_algorithm: String,
    /// Extended key usages (`clientAuth`, `serverAuth`, `any`, … or dotted OIDs);
    /// `None` when the extension is absent, which permits every usage.
    pub extended_key_usage: Option<Vec<String>>,
    /// Lowercase hex SHA-256 of the DER encoding.
    pub sha256_fingerprint: String,
}

impl CertificateFacts {
    /// Reads the first `CERTIFICATE` block of a PEM body; blocks with other labels are skipped
    /// and later blocks (a chain) ignored. A body with no `CERTIFICATE` block is an error.
    ///
    /// Tolerates surrounding whitespace, `\r\n` line endings and newlines still escaped as a
    /// literal `\n` (a body copied out of Cloudflare's JSON).
    pub fn from_pem(pem: &str) -> Result<Self, X509Error> {
        let text = pem.trim();
        if text.is_empty() {
            return Err(X509Error::Empty);
        }
        let text = unescape_json_newlines(text);
        let mut first_other_label = None;
        for block in Pem::iter_from_buffer(text.as_bytes()) {
            let block = block.map_err(|error| match error {
                x509_parser::error::PEMError::Base64DecodeError => X509Error::Base64,
                // Missing END line, malformed BEGIN line: there is no usable block.
                _ => X509Error::NotPem,
            })?;
            if is_certificate_label(&block.label) {
                return Self::from_der(&block.contents);
            }
            first_other_label.get_or_insert(block.label);
        }
        Err(first_other_label.map_or(X509Error::NotPem, |label| {
            X509Error::WrongLabel(printable_label(&label))
        }))
    }

    /// Reads a DER-encoded certificate; bytes after the certificate are an error.
    pub fn from_der(der: &[u8]) -> Result<Self, X509Error> {
        if der.is_empty() {
            return Err(X509Error::Empty);
        }
        let (rest, cert) = x509_parser::parse_x509_certificate(der).map_err(|error| {
            X509Error::Der(match error {
                x509_parser::nom::Err::Incomplete(_) => "truncated DER".to_owned(),
                x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => {
                    e.to_string()
                }
            })
        })?;
        if !rest.is_empty() {
            return Err(X509Error::Der(format!(
                "{} unexpected bytes after the certificate",
                rest.len()
            )));
        }
        Self::from_parsed(&cert, der)
    }

    fn from_parsed(cert: &X509Certificate<'_>, der: &[u8]) -> Result<Self, X509Error> {
        let validity = cert.validity();
        let (serial_hex, serial_decimal) = serial_strings(cert);
        Ok(CertificateFacts {
            not_before: utc_from_timestamp(validity.not_before.timestamp())?,
            not_after: utc_from_timestamp(validity.not_after.timestamp())?,
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial_hex,
            serial_decimal,
            subject_alt_names: subject_alt_names(cert)?,
            key: public_key_info(cert.public_key()),
            signature_algorithm: signature_algorithm_name(&cert.signature_algorithm),
            extended_key_usage: extended_key_usage(cert)?,
            sha256_fingerprint: hex::encode(Sha256::digest(der)),
        })
    }

    /// Whether the certificate may be used as a TLS client certificate: RFC 5280 §4.2.1.12,
    /// no EKU extension means any usage; otherwise it must list `clientAuth` or `any`.
    pub fn allows_client_auth(&self) -> bool {
        self.extended_key_usage.as_ref().is_none_or(|usages| {
            usages
                .iter()
                .any(|usage| usage == "clientAuth" || usage == "any")
        })
    }

    /// Whether the key is long enough: RSA ≥ 2048 bits, EC ≥ 256 bits, `EdDSA` always, DSA never
    /// (withdrawn by FIPS 186-5 whatever its size). `None` when the size or algorithm is unknown.
    pub fn key_is_strong(&self) -> Option<bool> {
        match self.key.algorithm {
            KeyAlgorithm::Rsa => self.key.bits.map(|bits| bits >= 2048),
            KeyAlgorithm::Ec => self.key.bits.map(|bits| bits >= 256),
            KeyAlgorithm::Ed25519 | KeyAlgorithm::Ed448 => Some(true),
            KeyAlgorithm::Dsa => Some(false),
            KeyAlgorithm::Other(_) => None,
        }
    }

    /// Whether the signature avoids broken hashes: false for SHA-1, MD5, MD4 and MD2 based
    /// signatures. Algorithms this module does not know pass, since the check only flags known-weak ones.
    pub fn signature_is_strong(&self) -> bool {
        let name = self.signature_algorithm.as_str();
        let weak_named = SIGNATURE_ALGORITHMS
            .iter()
            .any(|algorithm| algorithm.weak && algorithm.name == name);
        let weak_pss = name.strip_prefix(PSS_PREFIX).is_some_and(|hash| {
            HASH_ALGORITHMS
                .iter()
                .any(|algorithm| algorithm.weak && algorithm.name == hash)
        });
        !(weak_named || weak_pss)
    }

    /// Whether the API's `expires_on` agrees with the PEM's notAfter, within [`EXPIRY_TOLERANCE`].
    pub fn expiry_matches_api(&self, api_expires_on: DateTime<Utc>) -> bool {
        api_expires_on.signed_duration_since(self.not_after).abs() <= EXPIRY_TOLERANCE
    }
}

impl TryFrom<&str> for CertificateFacts {
    type Error = X509Error;

    fn try_from(pem: &str) -> Result<Self, Self::Error> {
        Self::from_pem(pem)
    }
}

/// One `certificate_check` (README, "Metrics").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::Display, strum::EnumIter, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Check {
    /// The body is a parseable PEM certificate.
    PemParses,
    /// The extended key usage permits TLS client authentication.
    ClientAuthUsage,
    /// RSA ≥ 2048 bits, EC ≥ 256 bits.
    KeyStrength,
    /// Not signed with SHA-1 or MD5.
    SignatureAlgorithm,
    /// The API's `expires_on` agrees with the PEM's notAfter.
    ExpiryMatchesApi,
}

impl Check {
    /// Every check, in the order [`run_checks`] reports them.
    pub const ALL: [Check; Check::VARIANTS.len()] = crate::labels::every();

    /// The `check` label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Results of the `certificate_check` checks for one certificate: `(check, passed)`, in
/// [`Check::ALL`] order.
///
/// `parsed` is the result of [`CertificateFacts::from_pem`]; `None` means no PEM body was sent,
/// so nothing is known and no check is reported (an unknown value produces no series).
/// An unparseable body reports only `pem_parses` = false. Otherwise every check is reported,
/// except `key_strength` when the key is of unknown size or algorithm, and
/// `expiry_matches_api` when the API sent no `expires_on`.
pub fn run_checks(
    parsed: Option<&Result<CertificateFacts, X509Error>>,
    api_expires_on: Option<DateTime<Utc>>,
) -> Vec<(Check, bool)> {
    let facts = match parsed {
        None => return Vec::new(),
        Some(Err(_)) => return vec![(Check::PemParses, false)],
        Some(Ok(facts)) => facts,
    };
    let mut results = Vec::with_capacity(Check::ALL.len());
    results.push((Check::PemParses, true));
    results.push((Check::ClientAuthUsage, facts.allows_client_auth()));
    if let Some(strong) = facts.key_is_strong() {
        results.push((Check::KeyStrength, strong));
    }
    results.push((Check::SignatureAlgorithm, facts.signature_is_strong()));
    if let Some(expires_on) = api_expires_on {
        results.push((
            Check::ExpiryMatchesApi,
            facts.expiry_matches_api(expires_on),
        ));
    }
    results
}

// ---------------------------------------------------------------------------------------------
// PEM helpers

/// RFC 7468 §5.1: parsers should accept the legacy `X509 CERTIFICATE` label too.
fn is_certificate_label(label: &str) -> bool {
    label == "CERTIFICATE" || label == "X509 CERTIFICATE"
}

/// A body pasted from raw JSON still carries `\n` as two characters; base64 and PEM headers
/// never contain a backslash, so turning them back into newlines cannot corrupt a valid body.
fn unescape_json_newlines(text: &str) -> Cow<'_, str> {
    if text.contains("\\n") {
        Cow::Owned(text.replace("\\r\\n", "\n").replace("\\n", "\n"))
    } else {
        Cow::Borrowed(text)
    }
}

/// The label comes from untrusted input and ends up in logs: keep it short and printable.
fn printable_label(label: &str) -> String {
    const MAX_CHARS: usize = 40;
    label
        .chars()
        .take(MAX_CHARS)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Field extraction

fn utc_from_timestamp(seconds: i64) -> Result<DateTime<Utc>, X509Error> {
    DateTime::from_timestamp(seconds, 0)
        .ok_or_else(|| X509Error::Der("validity date out of range".to_owned()))
}

/// Hex of the serial's significant bytes (at least one, so serial 0 is "00"), and its decimal.
fn serial_strings(cert: &X509Certificate<'_>) -> (String, String) {
    let raw = cert.raw_serial();
    let first_significant = raw
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or_else(|| raw.len().saturating_sub(1));
    let significant = raw.get(first_significant..).unwrap_or_default();
    let hex = if significant.is_empty() {
        "00".to_owned()
    } else {
        hex::encode(significant)
    };
    (hex, cert.tbs_certificate.serial.to_string())
}

fn subject_alt_names(cert: &X509Certificate<'_>) -> Result<Vec<String>, X509Error> {
    let Some(extension) = cert
        .subject_alternative_name()
        .map_err(|e| X509Error::Der(format!("subjectAltName extension: {e}")))?
    else {
        return Ok(Vec::new());
    };
    Ok(extension
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(value)
            | GeneralName::RFC822Name(value)
            | GeneralName::URI(value) => Some((*value).to_owned()),
            GeneralName::IPAddress(bytes) => Some(ip_address_string(bytes)),
            // Directory names, other names etc. never identify an origin host.
            _ => None,
        })
        .collect())
}

/// An IP SAN is 4 or 16 raw bytes; anything else is malformed, shown as hex rather than dropped.
fn ip_address_string(bytes: &[u8]) -> String {
    if let Ok(octets) = <[u8; 4]>::try_from(bytes) {
        Ipv4Addr::from(octets).to_string()
    } else if let Ok(octets) = <[u8; 16]>::try_from(bytes) {
        Ipv6Addr::from(octets).to_string()
    } else {
        hex::encode(bytes)
    }
}

fn extended_key_usage(cert: &X509Certificate<'_>) -> Result<Option<Vec<String>>, X509Error> {
    // A present but unreadable EKU must not read as "absent" (which would allow every usage).
    let extension = cert
        .extended_key_usage()
        .map_err(|e| X509Error::Der(format!("extendedKeyUsage extension: {e}")))?;
    Ok(extension.map(|extension| extended_key_usage_names(extension.value)))
}

fn extended_key_usage_names(usage: &ExtendedKeyUsage<'_>) -> Vec<String> {
    let known = [
        (usage.any, "any"),
        (usage.server_auth, "serverAuth"),
        (usage.client_auth, "clientAuth"),
        (usage.code_signing, "codeSigning"),
        (usage.email_protection, "emailProtection"),
        (usage.time_stamping, "timeStamping"),
        (usage.ocsp_signing, "OCSPSigning"),
    ];
    known
        .into_iter()
        .filter(|&(present, _)| present)
        .map(|(_, name)| name.to_owned())
        .chain(usage.other.iter().map(Oid::to_id_string))
        .collect()
}

fn public_key_info(spki: &SubjectPublicKeyInfo<'_>) -> PublicKeyInfo {
    let algorithm = &spki.algorithm.algorithm;
    let key = |algorithm, bits| PublicKeyInfo {
        algorithm,
        bits,
        curve: None,
    };
    if *algorithm == OID_PKCS1_RSAENCRYPTION || *algorithm == OID_PKCS1_RSASSAPSS {
        // x509-parser's own key_size() miscounts moduli without a leading zero byte.
        let bits = RSAPublicKey::from_der(&spki.subject_public_key.data)
            .ok()
            .and_then(|(_, rsa)| unsigned_bit_length(rsa.modulus));
        key(KeyAlgorithm::Rsa, bits)
    } else if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        // Named curves only: explicit curve parameters (forbidden by RFC 5480) stay unknown.
        let curve_oid = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|parameters| parameters.as_oid().ok());
        let named = curve_oid
            .as_ref()
            .and_then(|oid| CURVES.iter().find(|curve| *oid == curve.oid));
        PublicKeyInfo {
            algorithm: KeyAlgorithm::Ec,
            bits: named.map(|curve| curve.bits),
            curve: match (named, &curve_oid) {
                (Some(curve), _) => Some(curve.name.to_owned()),
                (None, Some(oid)) => Some(oid.to_id_string()),
                (None, None) => None,
            },
        }
    } else if *algorithm == OID_SIG_ED25519 {
        key(KeyAlgorithm::Ed25519, Some(256))
    } else if *algorithm == OID_SIG_ED448 {
        key(KeyAlgorithm::Ed448, Some(448))
    } else if *algorithm == OID_KEY_TYPE_DSA {
        key(KeyAlgorithm::Dsa, dsa_prime_bits(&spki.algorithm))
    } else {
        key(KeyAlgorithm::Other(algorithm.to_id_string()), None)
    }
}

/// DSA size is that of the prime `p`, the first integer of `Dss-Parms` (RFC 3279 §2.3.2);
/// unknown when the parameters are inherited from the issuer.
fn dsa_prime_bits(algorithm: &AlgorithmIdentifier<'_>) -> Option<u32> {
    let parameters = algorithm.parameters.as_ref()?;
    if parameters.tag() != Tag::Sequence {
        return None;
    }
    let (_, prime) = parse_der_integer(parameters.data).ok()?;
    unsigned_bit_length(prime.as_slice().ok()?)
}

/// Bit length of a big-endian unsigned integer, ignoring leading zeros; `None` for zero.
fn unsigned_bit_length(big_endian: &[u8]) -> Option<u32> {
    let start = big_endian.iter().position(|&byte| byte != 0)?;
    let (&first, rest) = big_endian.get(start..)?.split_first()?;
    let rest_bits = u32::try_from(rest.len()).ok()?.checked_mul(8)?;
    rest_bits.checked_add(u8::BITS - first.leading_zeros())
}

fn signature_algorithm_name(algorithm: &AlgorithmIdentifier<'_>) -> String {
    let oid = &algorithm.algorithm;
    if *oid == OID_PKCS1_RSASSAPSS {
        // PSS keeps its hash in the parameters (SHA-1 when absent), and the hash decides strength.
        return match algorithm
            .parameters
            .as_ref()
            .and_then(|parameters| RsaSsaPssParams::try_from(parameters).ok())
        {
            Some(parameters) => {
                let hash = parameters.hash_algorithm_oid();
                let hash_name = HASH_ALGORITHMS
                    .iter()
                    .find(|known| *hash == known.oid)
                    .map_or_else(
                        || Cow::Owned(hash.to_id_string()),
                        |known| Cow::Borrowed(known.name),
                    );
                format!("{PSS_PREFIX}{hash_name}")
            }
            None => "rsassaPss".to_owned(),
        };
    }
    SIGNATURE_ALGORITHMS
        .iter()
        .find(|known| *oid == known.oid)
        .map_or_else(|| oid.to_id_string(), |known| known.name.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Object identifiers: `oid_registry`'s where it has them, the `oid!` macro it is built on for
// the older or rarer ones it does not list. Compared as DER bytes, without allocating.

/// Prefix of RSASSA-PSS signature names; the hash name follows.
const PSS_PREFIX: &str = "rsassaPss-";

/// An algorithm known by name; `weak` marks broken hashes (collisions are practical).
struct NamedAlgorithm {
    oid: Oid<'static>,
    name: &'static str,
    weak: bool,
}

const fn named(oid: Oid<'static>, name: &'static str, weak: bool) -> NamedAlgorithm {
    NamedAlgorithm { oid, name, weak }
}

/// Signature algorithms by their OpenSSL names.
const SIGNATURE_ALGORITHMS: &[NamedAlgorithm] = &[
    named(OID_PKCS1_MD2WITHRSAENC, "md2WithRSAEncryption", true),
    named(OID_PKCS1_MD4WITHRSAENC, "md4WithRSAEncryption", true),
    named(OID_PKCS1_MD5WITHRSAENC, "md5WithRSAEncryption", true),
    named(OID_PKCS1_SHA1WITHRSA, "sha1WithRSAEncryption", true),
    named(OID_PKCS1_SHA256WITHRSA, "sha256WithRSAEncryption", false),
    named(OID_PKCS1_SHA384WITHRSA, "sha384WithRSAEncryption", false),
    named(OID_PKCS1_SHA512WITHRSA, "sha512WithRSAEncryption", false),
    named(OID_PKCS1_SHA224WITHRSA, "sha224WithRSAEncryption", false),
    // OIW variants still found in very old certificates.
    named(oid!(1.3.14.3.2.3), "md5WithRSA", true),
    named(OID_SHA1_WITH_RSA, "sha1WithRSA", true),
    named(oid!(1.2.840.10045.4.1), "ecdsa-with-SHA1", true),
    named(OID_SIG_ECDSA_WITH_SHA224, "ecdsa-with-SHA224", false),
    named(OID_SIG_ECDSA_WITH_SHA256, "ecdsa-with-SHA256", false),
    named(OID_SIG_ECDSA_WITH_SHA384, "ecdsa-with-SHA384", false),
    named(OID_SIG_ECDSA_WITH_SHA512, "ecdsa-with-SHA512", false),
    named(OID_SIG_DSA_WITH_SHA1, "dsaWithSHA1", true),
    named(oid!(2.16.840.1.101.3.4.3.1), "dsa_with_SHA224", false),
    named(oid!(2.16.840.1.101.3.4.3.2), "dsa_with_SHA256", false),
    named(OID_SIG_ED25519, "Ed25519", false),
    named(OID_SIG_ED448, "Ed448", false),
];

/// Hash algorithms that RSASSA-PSS parameters name.
const HASH_ALGORITHMS: &[NamedAlgorithm] = &[
    named(oid!(1.2.840.113549.2.2), "md2", true),
    named(oid!(1.2.840.113549.2.5), "md5", true),
    named(OID_HASH_SHA1, "sha1", true),
    named(OID_NIST_HASH_SHA256, "sha256", false),
    named(OID_NIST_HASH_SHA384, "sha384", false),
    named(OID_NIST_HASH_SHA512, "sha512", false),
    named(oid!(2.16.840.1.101.3.4.2.4), "sha224", false),
];

/// A named elliptic curve and its size in bits.
struct Curve {
    oid: Oid<'static>,
    name: &'static str,
    bits: u32,
}

const fn curve(oid: Oid<'static>, name: &'static str, bits: u32) -> Curve {
    Curve { oid, name, bits }
}

const CURVES: &[Curve] = &[
    curve(OID_EC_P256, "P-256", 256),
    curve(OID_NIST_EC_P384, "P-384", 384),
    curve(OID_NIST_EC_P521, "P-521", 521),
    curve(oid!(1.3.132.0.33), "P-224", 224),
    curve(oid!(1.2.840.10045.3.1.1), "P-192", 192),
    curve(oid!(1.3.132.0.10), "secp256k1", 256),
    curve(oid!(1.3.36.3.3.2.8.1.1.7), "brainpoolP256r1", 256),
    curve(oid!(1.3.36.3.3.2.8.1.1.11), "brainpoolP384r1", 384),
    curve(oid!(1.3.36.3.3.2.8.1.1.13), "brainpoolP512r1", 512),
];

#[cfg(test)]
mod tests;
