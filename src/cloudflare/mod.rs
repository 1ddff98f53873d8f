//! The Cloudflare API: DTOs ([`types`]) and the HTTP client ([`client`]).

pub mod client;
pub mod ratelimit;
pub mod types;

use strum::{Display, EnumIter, EnumString, IntoStaticStr, VariantArray};

pub use client::{
    ApiError, Attempt, Auth, Client, ClientBuildError, ClientOptions, ErrorReason, NoopObserver,
    RequestObserver, TokenCheck, with_deadline,
};

/// The API endpoints this product reads: the `endpoint` label of the API metrics (derived
/// from the variant's name) and where each one lives ([`Endpoint::paths`]). The client fills
/// those paths in and the simulator routes them, so a new endpoint is declared here once.
#[derive(IntoStaticStr, Display, EnumString, EnumIter, VariantArray)]
#[strum(serialize_all = "snake_case")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// Every per-hostname certificate of a zone.
    HostnameCertificatesList,
    /// One per-hostname certificate, by id.
    HostnameCertificateGet,
    /// One hostname's association (404: none).
    HostnameGet,
    /// The zone-level AOP certificates.
    ZoneCertificatesList,
    /// The zone-level AOP setting.
    ZoneSettingsGet,
    /// Whether the API token is valid.
    TokenVerify,
    /// Proxied DNS records, for hostname discovery.
    DnsRecordsList,
    /// The zones the token can read, for zones given by name and zone discovery.
    ZonesList,
}

impl Endpoint {
    /// Every endpoint, in label order.
    pub const ALL: [Endpoint; Endpoint::VARIANTS.len()] = crate::labels::every();

    /// The `endpoint` label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Its paths under the API root, `{name}` marking a path parameter. The first is the
    /// usual one; `token_verify` also answers for account-owned tokens at the second.
    pub const fn paths(self) -> &'static [&'static str] {
        match self {
            Endpoint::HostnameCertificatesList => {
                &["/zones/{zone_id}/origin_tls_client_auth/hostnames/certificates"]
            }
            Endpoint::HostnameCertificateGet => {
                &["/zones/{zone_id}/origin_tls_client_auth/hostnames/certificates/{cert_id}"]
            }
            Endpoint::HostnameGet => {
                &["/zones/{zone_id}/origin_tls_client_auth/hostnames/{hostname}"]
            }
            Endpoint::ZoneCertificatesList => &["/zones/{zone_id}/origin_tls_client_auth"],
            Endpoint::ZoneSettingsGet => &["/zones/{zone_id}/origin_tls_client_auth/settings"],
            Endpoint::TokenVerify => &[
                "/user/tokens/verify",
                "/accounts/{account_id}/tokens/verify",
            ],
            Endpoint::DnsRecordsList => &["/zones/{zone_id}/dns_records"],
            Endpoint::ZonesList => &["/zones"],
        }
    }

    /// Whether it lists certificates (whose items keep their last good data when they stop
    /// decoding).
    pub fn lists_certificates(self) -> bool {
        matches!(
            self,
            Endpoint::HostnameCertificatesList | Endpoint::ZoneCertificatesList
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    #[test]
    fn labels_are_the_documented_ones() {
        let labels: Vec<&str> = Endpoint::ALL
            .iter()
            .map(|endpoint| endpoint.as_str())
            .collect();
        assert_eq!(
            labels,
            [
                "hostname_certificates_list",
                "hostname_certificate_get",
                "hostname_get",
                "zone_certificates_list",
                "zone_settings_get",
                "token_verify",
                "dns_records_list",
                "zones_list",
            ]
        );
        assert_eq!(Endpoint::HostnameGet.to_string(), "hostname_get");
        assert_eq!(
            "zones_list".parse::<Endpoint>().ok(),
            Some(Endpoint::ZonesList)
        );
    }
}
