//! The Cloudflare API: DTOs ([`types`]) and the HTTP client ([`client`]).

pub mod client;
pub mod ratelimit;
pub mod types;

pub use client::{
    ApiError, Attempt, Auth, Client, ClientBuildError, ClientOptions, ErrorReason, NoopObserver,
    RequestObserver, TokenCheck, with_deadline,
};

/// The API endpoints this product reads; the `endpoint` label of the API metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    HostnameCertificatesList,
    HostnameCertificateGet,
    HostnameGet,
    ZoneCertificatesList,
    ZoneSettingsGet,
    TokenVerify,
    DnsRecordsList,
    ZonesList,
}

impl Endpoint {
    /// Every endpoint, in label order.
    pub const ALL: [Endpoint; 8] = [
        Endpoint::HostnameCertificatesList,
        Endpoint::HostnameCertificateGet,
        Endpoint::HostnameGet,
        Endpoint::ZoneCertificatesList,
        Endpoint::ZoneSettingsGet,
        Endpoint::TokenVerify,
        Endpoint::DnsRecordsList,
        Endpoint::ZonesList,
    ];

    /// The `endpoint` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::HostnameCertificatesList => "hostname_certificates_list",
            Endpoint::HostnameCertificateGet => "hostname_certificate_get",
            Endpoint::HostnameGet => "hostname_get",
            Endpoint::ZoneCertificatesList => "zone_certificates_list",
            Endpoint::ZoneSettingsGet => "zone_settings_get",
            Endpoint::TokenVerify => "token_verify",
            Endpoint::DnsRecordsList => "dns_records_list",
            Endpoint::ZonesList => "zones_list",
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
