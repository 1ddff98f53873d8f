//! Unit tests of `x509`: rcgen-built certificates with known properties, and OpenSSL fixtures
//! for what rcgen cannot build (RSA, DSA, MD5, P-192, RSASSA-PSS).

use super::*;
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, PKCS_ECDSA_P256_SHA256,
    PKCS_ECDSA_P384_SHA384, PKCS_ED25519, SanType, SerialNumber, date_time_ymd,
};
use std::net::IpAddr;
use std::time::Duration;

const RSA1024_SHA1_CLIENT: &str = include_str!("../../scenarios/fixtures/rsa1024-sha1-client.pem");
const RSA2048_SERVER_ONLY: &str = include_str!("../../scenarios/fixtures/rsa2048-server-only.pem");
const RSA2048_MD5_CLIENT: &str = include_str!("../../tests/fixtures/rsa2048-md5-client.pem");
const DSA2048_SHA256: &str = include_str!("../../tests/fixtures/dsa2048-sha256.pem");
const EC_P192_SHA256: &str = include_str!("../../tests/fixtures/ec-p192-sha256.pem");
const RSAPSS2048_SHA256: &str = include_str!("../../tests/fixtures/rsapss2048-sha256.pem");
const RSAPSS2048_SHA1: &str = include_str!("../../tests/fixtures/rsapss2048-sha1.pem");

fn utc(rfc3339: &str) -> DateTime<Utc> {
    rfc3339.parse().unwrap()
}

fn self_signed(
    algorithm: &'static rcgen::SignatureAlgorithm,
    configure: impl FnOnce(&mut CertificateParams),
) -> rcgen::Certificate {
    let mut params = CertificateParams::default();
    configure(&mut params);
    params
        .self_signed(&KeyPair::generate_for(algorithm).unwrap())
        .unwrap()
}

fn parse(pem: &str) -> CertificateFacts {
    CertificateFacts::from_pem(pem).unwrap()
}

/// Decimal of a hex string by schoolbook arithmetic, independent of the code under test.
fn hex_to_decimal(hex: &str) -> String {
    let mut little_endian_digits = vec![0_u32];
    for hex_digit in hex.chars() {
        let mut carry = hex_digit.to_digit(16).unwrap();
        for digit in &mut little_endian_digits {
            let value = *digit * 16 + carry;
            *digit = value % 10;
            carry = value / 10;
        }
        while carry > 0 {
            little_endian_digits.push(carry % 10);
            carry /= 10;
        }
    }
    while little_endian_digits.len() > 1 && little_endian_digits.last() == Some(&0) {
        little_endian_digits.pop();
    }
    little_endian_digits
        .iter()
        .rev()
        .map(|&digit| char::from_digit(digit, 10).unwrap())
        .collect()
}

fn all_pass() -> Vec<(Check, bool)> {
    Check::ALL.iter().map(|&check| (check, true)).collect()
}

/// `run_checks` of a certificate that parses, without an API expiry: every check but
/// `ExpiryMatchesApi`, in order; those in `failing` fail, the others pass.
fn passing_except(failing: &[Check]) -> Vec<(Check, bool)> {
    [
        Check::PemParses,
        Check::ClientAuthUsage,
        Check::KeyStrength,
        Check::SignatureAlgorithm,
    ]
    .into_iter()
    .map(|check| (check, !failing.contains(&check)))
    .collect()
}

#[test]
fn hex_to_decimal_helper_is_right() {
    assert_eq!(hex_to_decimal("0"), "0");
    assert_eq!(hex_to_decimal("ff"), "255");
    assert_eq!(hex_to_decimal("0123456789abcdef"), "81985529216486895");
}

#[test]
fn p256_client_certificate_yields_every_field_as_built() {
    let not_before = date_time_ymd(2025, 3, 4) + Duration::from_secs(13 * 3600 + 14 * 60 + 15);
    let not_after = date_time_ymd(2027, 6, 30) + Duration::from_secs(23 * 3600 + 59 * 60 + 59);
    let cert = self_signed(&PKCS_ECDSA_P256_SHA256, |params| {
        params.not_before = not_before;
        params.not_after = not_after;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "origin-pull.example.com");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example");
        params.serial_number = Some(SerialNumber::from(0x0123_4567_89ab_cdef_u64));
        params.subject_alt_names = vec![
            SanType::DnsName("origin-pull.example.com".try_into().unwrap()),
            SanType::DnsName("*.origin.example.com".try_into().unwrap()),
            SanType::IpAddress(IpAddr::from([192, 0, 2, 10])),
            SanType::IpAddress("2001:db8::1".parse().unwrap()),
            SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
            SanType::URI("https://example.com/aop".try_into().unwrap()),
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    });

    let facts = parse(&cert.pem());

    let name = "CN=origin-pull.example.com, O=Example".to_owned();
    let expected = CertificateFacts {
        not_before: utc("2025-03-04T13:14:15Z"),
        not_after: utc("2027-06-30T23:59:59Z"),
        subject: name.clone(),
        issuer: name,
        serial_hex: "0123456789abcdef".to_owned(),
        serial_decimal: "81985529216486895".to_owned(),
        subject_alt_names: vec![
            "origin-pull.example.com".to_owned(),
            "*.origin.example.com".to_owned(),
            "192.0.2.10".to_owned(),
            "2001:db8::1".to_owned(),
            "ops@example.com".to_owned(),
            "https://example.com/aop".to_owned(),
        ],
        key: PublicKeyInfo {
            algorithm: KeyAlgorithm::Ec,
            bits: Some(256),
            curve: Some("P-256".to_owned()),
        },
        signature_algorithm: "ecdsa-with-SHA256".to_owned(),
        extended_key_usage: Some(vec!["clientAuth".to_owned()]),
        sha256_fingerprint: hex::encode(Sha256::digest(cert.der())),
    };
    assert_eq!(facts, expected);
    assert_eq!(facts.sha256_fingerprint.len(), 64);
    assert_eq!(CertificateFacts::from_der(cert.der()).unwrap(), expected);
    assert_eq!(
        CertificateFacts::try_from(cert.pem().as_str()).unwrap(),
        expected
    );

    assert!(facts.allows_client_auth());
    assert_eq!(facts.key_is_strong(), Some(true));
    assert!(facts.signature_is_strong());

    let parsed = Ok(facts.clone());
    assert_eq!(run_checks(Some(&parsed), Some(facts.not_after)), all_pass());
    let two_days = TimeDelta::days(2);
    for api_expires_on in [facts.not_after + two_days, facts.not_after - two_days] {
        assert_eq!(
            run_checks(Some(&parsed), Some(api_expires_on)).last(),
            Some(&(Check::ExpiryMatchesApi, false))
        );
    }
}

#[test]
fn expiry_tolerance_is_inclusive_at_sixty_seconds() {
    let facts = parse(RSA2048_SERVER_ONLY);
    let not_after = facts.not_after;
    assert!(facts.expiry_matches_api(not_after + TimeDelta::seconds(60)));
    assert!(facts.expiry_matches_api(not_after - TimeDelta::seconds(60)));
    assert!(!facts.expiry_matches_api(not_after + TimeDelta::seconds(61)));
    assert!(!facts.expiry_matches_api(not_after - TimeDelta::seconds(61)));
}

#[test]
fn p384_key_is_384_bits() {
    let facts = parse(&self_signed(&PKCS_ECDSA_P384_SHA384, |_| {}).pem());
    assert_eq!(
        facts.key,
        PublicKeyInfo {
            algorithm: KeyAlgorithm::Ec,
            bits: Some(384),
            curve: Some("P-384".to_owned()),
        }
    );
    assert_eq!(facts.signature_algorithm, "ecdsa-with-SHA384");
    assert_eq!(facts.key_is_strong(), Some(true));
}

#[test]
fn ed25519_key_is_strong() {
    let facts = parse(&self_signed(&PKCS_ED25519, |_| {}).pem());
    assert_eq!(facts.key.algorithm, KeyAlgorithm::Ed25519);
    assert_eq!(facts.key.curve, None);
    assert_eq!(facts.signature_algorithm, "Ed25519");
    assert_eq!(facts.key_is_strong(), Some(true));
    assert!(facts.signature_is_strong());
}

#[test]
fn rsa1024_sha1_fixture_fails_key_and_signature_checks() {
    let facts = parse(RSA1024_SHA1_CLIENT);
    assert_eq!(
        facts.key,
        PublicKeyInfo {
            algorithm: KeyAlgorithm::Rsa,
            bits: Some(1024),
            curve: None,
        }
    );
    assert_eq!(facts.signature_algorithm, "sha1WithRSAEncryption");
    assert_eq!(
        facts.subject,
        "CN=legacy-origin-pull.example.net, O=Example Legacy"
    );
    assert_eq!(facts.issuer, facts.subject);
    assert_eq!(facts.subject_alt_names, ["legacy-origin-pull.example.net"]);
    assert_eq!(
        facts.extended_key_usage,
        Some(vec!["clientAuth".to_owned()])
    );
    assert_eq!(facts.not_before, utc("2026-11-23T13:57:42Z"));
    assert_eq!(facts.not_after, utc("2036-11-20T13:57:42Z"));
    // `openssl x509 -fingerprint -sha256`, colons removed.
    assert_eq!(
        facts.sha256_fingerprint,
        "f1b08281d8a23aec3bcb78f8dbfafcc3540b4be777ad3a82e61db7f11a0d7f29"
    );
    assert_eq!(
        run_checks(Some(&Ok(facts)), None),
        passing_except(&[Check::KeyStrength, Check::SignatureAlgorithm])
    );
}

#[test]
fn serials_match_openssl() {
    // `openssl x509 -noout -serial` of each fixture.
    for (pem, openssl_serial) in [
        (
            RSA1024_SHA1_CLIENT,
            "6A8F2272D72C60EE856A8387E8CC5733550EC882",
        ),
        (
            RSA2048_SERVER_ONLY,
            "38ACAF306B819F01694C8249E8699A5F9C3542CA",
        ),
        // A leading zero nibble stays: openssl prints whole bytes.
        (
            RSAPSS2048_SHA256,
            "01BF7C823CE188805A64894B5DD4FD8536458D55",
        ),
    ] {
        let facts = parse(pem);
        assert_eq!(facts.serial_hex, openssl_serial.to_ascii_lowercase());
        assert_eq!(facts.serial_decimal, hex_to_decimal(openssl_serial));
    }
    assert_eq!(
        parse(RSA1024_SHA1_CLIENT).serial_decimal,
        "608345029166642823677771026422322522149329225858"
    );
}

#[test]
fn rsa2048_server_only_fixture_fails_client_auth_only() {
    let facts = parse(RSA2048_SERVER_ONLY);
    assert_eq!(facts.key.algorithm, KeyAlgorithm::Rsa);
    assert_eq!(facts.key.bits, Some(2048));
    assert_eq!(
        facts.extended_key_usage,
        Some(vec!["serverAuth".to_owned()])
    );
    assert_eq!(facts.signature_algorithm, "sha256WithRSAEncryption");
    assert_eq!(
        run_checks(Some(&Ok(facts)), None),
        passing_except(&[Check::ClientAuthUsage])
    );
}

#[test]
fn missing_eku_allows_client_auth() {
    let facts = parse(
        &self_signed(&PKCS_ECDSA_P256_SHA256, |params| {
            params.extended_key_usages.clear();
        })
        .pem(),
    );
    assert_eq!(facts.extended_key_usage, None);
    assert_eq!(
        run_checks(Some(&Ok(facts)), None)[1],
        (Check::ClientAuthUsage, true)
    );
}

#[test]
fn eku_any_allows_client_auth_and_other_usages_do_not() {
    let with_usages = |usages: Vec<ExtendedKeyUsagePurpose>| {
        parse(
            &self_signed(&PKCS_ECDSA_P256_SHA256, |params| {
                params.extended_key_usages = usages;
            })
            .pem(),
        )
    };
    let any = with_usages(vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::Any,
    ]);
    assert_eq!(
        any.extended_key_usage,
        Some(vec!["any".to_owned(), "serverAuth".to_owned()])
    );
    assert!(any.allows_client_auth());

    let neither = with_usages(vec![
        ExtendedKeyUsagePurpose::CodeSigning,
        ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 4, 1, 99_999, 1]),
    ]);
    assert_eq!(
        neither.extended_key_usage,
        Some(vec![
            "codeSigning".to_owned(),
            "1.3.6.1.4.1.99999.1".to_owned()
        ])
    );
    assert!(!neither.allows_client_auth());
}

#[test]
fn openssl_fixtures_name_weak_and_strong_algorithms() {
    // (pem, key, signature, key strong, signature strong)
    let cases = [
        (
            RSA2048_MD5_CLIENT,
            KeyAlgorithm::Rsa,
            Some(2048),
            None,
            "md5WithRSAEncryption",
            Some(true),
            false,
        ),
        (
            DSA2048_SHA256,
            KeyAlgorithm::Dsa,
            Some(2048),
            None,
            "dsa_with_SHA256",
            Some(false),
            true,
        ),
        (
            EC_P192_SHA256,
            KeyAlgorithm::Ec,
            Some(192),
            Some("P-192"),
            "ecdsa-with-SHA256",
            Some(false),
            true,
        ),
        (
            RSAPSS2048_SHA256,
            KeyAlgorithm::Rsa,
            Some(2048),
            None,
            "rsassaPss-sha256",
            Some(true),
            true,
        ),
        // The PSS parameters omit the hash: SHA-1 by RFC 4055 default.
        (
            RSAPSS2048_SHA1,
            KeyAlgorithm::Rsa,
            Some(2048),
            None,
            "rsassaPss-sha1",
            Some(true),
            false,
        ),
    ];
    for (pem, algorithm, bits, curve, signature, key_strong, signature_strong) in cases {
        let facts = parse(pem);
        let expected_key = PublicKeyInfo {
            algorithm,
            bits,
            curve: curve.map(str::to_owned),
        };
        assert_eq!(facts.key, expected_key, "{signature}");
        assert_eq!(facts.signature_algorithm, signature);
        assert_eq!(facts.key_is_strong(), key_strong, "{signature}");
        assert_eq!(facts.signature_is_strong(), signature_strong, "{signature}");
    }
}

#[test]
fn unknown_key_strength_omits_the_check() {
    let mut facts = parse(RSA2048_SERVER_ONLY);
    facts.key = PublicKeyInfo {
        algorithm: KeyAlgorithm::Other("1.2.3.4".to_owned()),
        bits: None,
        curve: None,
    };
    let checks: Vec<Check> = run_checks(Some(&Ok(facts)), Some(utc("2036-11-20T13:57:42Z")))
        .into_iter()
        .map(|(check, _)| check)
        .collect();
    assert_eq!(
        checks,
        [
            Check::PemParses,
            Check::ClientAuthUsage,
            Check::SignatureAlgorithm,
            Check::ExpiryMatchesApi
        ]
    );
}

#[test]
fn unparseable_body_reports_only_pem_parses_and_absent_body_reports_nothing() {
    let garbage = CertificateFacts::from_pem("this is not a certificate");
    assert_eq!(garbage, Err(X509Error::NotPem));
    assert_eq!(
        run_checks(Some(&garbage), Some(utc("2030-01-01T00:00:00Z"))),
        [(Check::PemParses, false)]
    );
    assert_eq!(run_checks(None, Some(utc("2030-01-01T00:00:00Z"))), []);
    assert_eq!(run_checks(None, None), []);
}

#[test]
fn check_labels_match_the_spec() {
    let labels: Vec<&str> = Check::ALL.iter().map(|check| check.as_str()).collect();
    assert_eq!(
        labels,
        [
            "pem_parses",
            "client_auth_usage",
            "key_strength",
            "signature_algorithm",
            "expiry_matches_api"
        ]
    );
    assert_eq!(Check::KeyStrength.to_string(), "key_strength");
    assert_eq!(
        serde_json::to_string(&Check::PemParses).unwrap(),
        "\"pem_parses\""
    );
}

#[test]
fn tolerant_pem_forms_parse_to_the_same_facts() {
    let expected = parse(RSA1024_SHA1_CLIENT);
    let crlf = RSA1024_SHA1_CLIENT.replace('\n', "\r\n");
    let padded = format!("\n\n   {RSA1024_SHA1_CLIENT}  \n\t\n");
    let literal_escapes = RSA1024_SHA1_CLIENT.trim_end().replace('\n', "\\n");
    let literal_crlf_escapes = RSA1024_SHA1_CLIENT.trim_end().replace('\n', "\\r\\n");
    // What serde_json hands the poller from Cloudflare's `"certificate": "-----BEGIN…\n…"`.
    let json = serde_json::json!({ "certificate": RSA1024_SHA1_CLIENT }).to_string();
    let from_json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let decoded = from_json["certificate"].as_str().unwrap().to_owned();
    let chain = format!("{RSA1024_SHA1_CLIENT}{RSA2048_SERVER_ONLY}");
    let key_then_cert = format!(
        "{}{RSA1024_SHA1_CLIENT}",
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .serialize_pem()
    );
    let legacy_label = RSA1024_SHA1_CLIENT.replace(" CERTIFICATE-----", " X509 CERTIFICATE-----");
    for variant in [
        crlf,
        padded,
        literal_escapes,
        literal_crlf_escapes,
        decoded,
        chain,
        key_then_cert,
        legacy_label,
    ] {
        assert_eq!(
            CertificateFacts::from_pem(&variant),
            Ok(expected.clone()),
            "{variant:?}"
        );
    }
}

#[test]
fn malformed_bodies_give_the_matching_error() {
    let key_pem = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem();
    let no_end = RSA1024_SHA1_CLIENT.replace("-----END CERTIFICATE-----", "");
    let garbage_in_base64 = RSA1024_SHA1_CLIENT.replace("\n-----END", "\n!!not base64!!\n-----END");
    let padding_mid_body = RSA1024_SHA1_CLIENT.replacen("\nBQAw", "=\nBQAw", 1);
    // The fixture's base64 ends on a whole group, so this decodes to 3 bytes past the DER.
    let bytes_after_der = RSA1024_SHA1_CLIENT.replace("\n-----END", "AAAA\n-----END");
    let cases = [
        ("", X509Error::Empty),
        (" \r\n\t ", X509Error::Empty),
        ("hello", X509Error::NotPem),
        ("-----BEGIN CERTIFICATE", X509Error::NotPem),
        (no_end.as_str(), X509Error::NotPem),
        (
            key_pem.as_str(),
            X509Error::WrongLabel("PRIVATE KEY".to_owned()),
        ),
        (garbage_in_base64.as_str(), X509Error::Base64),
        (padding_mid_body.as_str(), X509Error::Base64),
        (
            bytes_after_der.as_str(),
            X509Error::Der("3 unexpected bytes after the certificate".to_owned()),
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(CertificateFacts::from_pem(body), Err(expected), "{body:?}");
    }
    // Valid base64, but not a certificate.
    assert!(matches!(
        CertificateFacts::from_pem(
            "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----"
        ),
        Err(X509Error::Der(_))
    ));
    assert_eq!(CertificateFacts::from_der(&[]), Err(X509Error::Empty));
}

#[test]
fn der_with_trailing_bytes_is_rejected() {
    let der = self_signed(&PKCS_ECDSA_P256_SHA256, |_| {}).der().to_vec();
    assert!(CertificateFacts::from_der(&der).is_ok());
    let padded = [der.as_slice(), &[0, 0, 0]].concat();
    assert_eq!(
        CertificateFacts::from_der(&padded),
        Err(X509Error::Der(
            "3 unexpected bytes after the certificate".to_owned()
        ))
    );
}

#[test]
fn error_messages_are_one_short_line_without_the_body() {
    let long_label = format!(
        "-----BEGIN {}\u{7}-----\nAAAA\n-----END X-----",
        "K".repeat(5000)
    );
    let Err(error) = CertificateFacts::from_pem(&long_label) else {
        panic!("a non-certificate label must not parse");
    };
    assert_eq!(error, X509Error::WrongLabel("K".repeat(40)));
    let body_with_bad_der = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----",
        "QUFB".repeat(500)
    );
    for body in [long_label.as_str(), body_with_bad_der.as_str(), "x", ""] {
        let message = CertificateFacts::from_pem(body).unwrap_err().to_string();
        assert!(message.len() < 120, "{message}");
        assert!(!message.contains('\n'), "{message}");
        assert!(!message.contains("QUFB"), "{message}");
    }
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(bound).unwrap()).unwrap()
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next().to_be_bytes()[0]).collect()
    }
}

/// Parsing and checking must return, never panic, whatever the input.
fn parse_and_check_pem(body: &str) -> bool {
    let parsed = CertificateFacts::from_pem(body);
    let checks = run_checks(Some(&parsed), Some(utc("2030-01-01T00:00:00Z")));
    assert!(!checks.is_empty());
    parsed.is_ok()
}

#[test]
fn never_panics_on_truncated_garbled_or_random_input() {
    let cert = self_signed(&PKCS_ECDSA_P256_SHA256, |params| {
        params.subject_alt_names = vec![SanType::DnsName("fuzz.example.com".try_into().unwrap())];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    });
    let pem = cert.pem();
    let der = cert.der().to_vec();

    // Every prefix of the PEM: without an END line none may parse.
    let end_line = pem.find("-----END ").unwrap();
    for len in 0..=pem.len() {
        let parsed = parse_and_check_pem(&pem[..len]);
        if len <= end_line {
            assert!(!parsed, "prefix of {len} bytes parsed");
        }
    }
    assert!(parse_and_check_pem(&pem));

    // Every single-bit flip of the PEM text that stays UTF-8.
    let mut flipped = pem.clone().into_bytes();
    for index in 0..flipped.len() {
        for bit in 0..8 {
            flipped[index] ^= 1 << bit;
            if let Ok(text) = std::str::from_utf8(&flipped) {
                parse_and_check_pem(text);
            }
            flipped[index] ^= 1 << bit;
        }
    }

    // Every prefix and every single-bit flip of the DER.
    for len in 0..der.len() {
        assert!(
            CertificateFacts::from_der(&der[..len]).is_err(),
            "DER prefix of {len} bytes parsed"
        );
    }
    let mut flipped = der.clone();
    for index in 0..flipped.len() {
        for bit in 0..8 {
            flipped[index] ^= 1 << bit;
            let parsed = CertificateFacts::from_der(&flipped);
            run_checks(Some(&parsed), None);
            flipped[index] ^= 1 << bit;
        }
    }

    // Random bytes: raw DER, lossy text, and base64-alphabet bodies inside a CERTIFICATE block.
    let mut prng = Prng(0x9E37_79B9_7F4A_7C15);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n";
    for _ in 0..2_000 {
        let len = prng.below(1_500);
        let random = prng.bytes(len);
        assert!(CertificateFacts::from_der(&random).is_err());
        parse_and_check_pem(&String::from_utf8_lossy(&random));
        let base64ish: String = (0..len)
            .map(|_| char::from(alphabet[prng.below(alphabet.len())]))
            .collect();
        parse_and_check_pem(&format!(
            "-----BEGIN CERTIFICATE-----\n{base64ish}\n-----END CERTIFICATE-----\n"
        ));
    }

    // Random DER with a valid certificate's header, so parsing goes deeper than the first tag.
    for _ in 0..2_000 {
        let mut mutated = der.clone();
        for _ in 0..=prng.below(8) {
            let index = prng.below(mutated.len());
            mutated[index] = prng.bytes(1)[0];
        }
        let parsed = CertificateFacts::from_der(&mutated);
        run_checks(Some(&parsed), None);
    }
}
