//! The PEM/X.509 path, from arbitrary bytes: `CertificateFacts::from_der` on the bytes,
//! `CertificateFacts::from_pem` on them as text, and for each result `run_checks` (with and
//! without an API expiry, including the extremes chrono can hold) and every accessor.
#![no_main]

use chrono::{DateTime, Utc};
use cloudflare_aop_exporter::x509::{CertificateFacts, X509Error, run_checks};
use libfuzzer_sys::fuzz_target;

fn exercise(parsed: &Result<CertificateFacts, X509Error>) {
    assert!(run_checks(None, None).is_empty());
    let fixed = DateTime::from_timestamp(1_800_000_000, 0).expect("a valid instant");
    for expires_on in [
        None,
        Some(fixed),
        Some(DateTime::<Utc>::MIN_UTC),
        Some(DateTime::<Utc>::MAX_UTC),
    ] {
        let checks = run_checks(Some(parsed), expires_on);
        assert!(!checks.is_empty(), "pem_parses is always reported");
    }
    match parsed {
        Ok(facts) => {
            let _ = facts.allows_client_auth();
            let _ = facts.key_is_strong();
            let _ = facts.signature_is_strong();
            assert_eq!(facts.sha256_fingerprint.len(), 64);
            let _ = format!("{facts:?}");
        }
        Err(error) => {
            // Error text ends up in logs and the status page: bounded.
            assert!(error.to_string().len() < 4096, "{error}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    exercise(&CertificateFacts::from_der(data));
    if let Ok(text) = std::str::from_utf8(data) {
        exercise(&CertificateFacts::from_pem(text));
        let _ = CertificateFacts::try_from(text);
    }
});
