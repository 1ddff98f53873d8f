//! Cloudflare API data transfer objects: the envelope and every result shape this product reads.
//!
//! Tolerant by design: every field is optional, unknown fields are ignored (so `private_key`
//! is dropped at deserialization and never held in memory), and an unknown status value parses
//! as [`Status::Unknown`] instead of failing the poll. The simulator serializes the same types.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The response envelope of every Cloudflare v4 endpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Envelope<T> {
    /// `false` is an error even when the HTTP status is 200.
    #[serde(default)]
    pub success: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub errors: Vec<ApiMessage>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub messages: Vec<ApiMessage>,
    #[serde(default = "Option::default")]
    pub result: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_info: Option<ResultInfo>,
}

/// One entry of `errors` / `messages`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ApiMessage {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
}

impl fmt::Display for ApiMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.message.as_deref()) {
            (Some(code), Some(message)) => write!(f, "{code}: {message}"),
            (Some(code), None) => write!(f, "{code}"),
            (None, Some(message)) => f.write_str(message),
            (None, None) => f.write_str("(no detail)"),
        }
    }
}

/// Paging information some list endpoints carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ResultInfo {
    #[serde(default)]
    pub page: Option<u32>,
    #[serde(default)]
    pub per_page: Option<u32>,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub total_count: Option<u64>,
    #[serde(default)]
    pub total_pages: Option<u32>,
}

/// Status of a certificate or an association. Values Cloudflare adds later parse as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Initializing,
    PendingDeployment,
    PendingDeletion,
    Active,
    Deleted,
    DeploymentTimedOut,
    DeletionTimedOut,
    Unknown,
}

impl Status {
    /// Whether the status is where an object rests (`active`, `deleted`, or a value this
    /// version does not know). Every other status is on its way somewhere or stuck there
    /// (`initializing`, `pending_*`, `*_timed_out`): the refresher re-checks such objects
    /// every tick.
    pub fn is_steady(self) -> bool {
        matches!(self, Status::Active | Status::Deleted | Status::Unknown)
    }

    /// Every value, in the order metrics expose them (`unknown` last).
    pub const ALL: [Status; 8] = [
        Status::Initializing,
        Status::PendingDeployment,
        Status::PendingDeletion,
        Status::Active,
        Status::Deleted,
        Status::DeploymentTimedOut,
        Status::DeletionTimedOut,
        Status::Unknown,
    ];

    /// The API's spelling (and the `status` label value).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Initializing => "initializing",
            Status::PendingDeployment => "pending_deployment",
            Status::PendingDeletion => "pending_deletion",
            Status::Active => "active",
            Status::Deleted => "deleted",
            Status::DeploymentTimedOut => "deployment_timed_out",
            Status::DeletionTimedOut => "deletion_timed_out",
            Status::Unknown => "unknown",
        }
    }

    /// Parses the API's spelling; anything else is `Unknown`.
    pub fn parse(value: &str) -> Status {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
            .unwrap_or(Status::Unknown)
    }

    /// `initializing` or `pending_*`: a state that should not last.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            Status::Initializing | Status::PendingDeployment | Status::PendingDeletion
        )
    }

    /// `deployment_timed_out` or `deletion_timed_out`.
    pub fn is_timed_out(self) -> bool {
        matches!(self, Status::DeploymentTimedOut | Status::DeletionTimedOut)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Ok(Status::parse(&value))
    }
}

/// An item of the hostname-certificate list, or the result of getting one certificate.
///
/// Cloudflare has returned two shapes here over time: certificate-shaped items (`id`, `status`)
/// and association-shaped items (`cert_id`, `cert_status`, `hostname`, `enabled`). Both parse;
/// use [`HostnameCertificate::certificate_id`] and [`HostnameCertificate::certificate_status`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct HostnameCertificate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_on: Option<DateTime<Utc>>,
    // Association-shaped items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_uploaded_on: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

impl HostnameCertificate {
    /// The certificate's id in either shape (`id`, else `cert_id`).
    pub fn certificate_id(&self) -> Option<&str> {
        self.id.as_deref().or(self.cert_id.as_deref())
    }

    /// The certificate's status in either shape (`cert_status` of an association, else `status`).
    pub fn certificate_status(&self) -> Option<Status> {
        self.cert_status.or(self.status)
    }

    /// When the certificate was uploaded, in either shape.
    pub fn certificate_uploaded_on(&self) -> Option<DateTime<Utc>> {
        self.uploaded_on.or(self.cert_uploaded_on)
    }
}

/// GET `/zones/{zone_id}/origin_tls_client_auth/hostnames/{hostname}`: one hostname's association.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct HostnameAssociation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_updated_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_uploaded_on: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// `true`, `false`, or `null` (the association was voided). A missing field reads as `null`.
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// An item of GET `/zones/{zone_id}/origin_tls_client_auth`: a zone-level AOP certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ZoneCertificate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_on: Option<DateTime<Utc>>,
}

/// GET `/zones/{zone_id}/origin_tls_client_auth/settings`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ZoneSettings {
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// GET `/user/tokens/verify`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct TokenVerification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `active`, `disabled` or `expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
}

impl TokenVerification {
    /// The token is usable now.
    pub fn is_active(&self) -> bool {
        self.status.as_deref() == Some("active")
    }
}

/// An item of GET `/zones/{zone_id}/dns_records?proxied=true`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct DnsRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub record_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxied: Option<bool>,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_status_parses_as_unknown() {
        let item: HostnameCertificate =
            serde_json::from_str(r#"{"id":"a","status":"quarantined"}"#).unwrap();
        assert_eq!(item.status, Some(Status::Unknown));
    }

    #[test]
    fn both_list_shapes_expose_id_and_status() {
        let certificate_shaped: HostnameCertificate =
            serde_json::from_str(r#"{"id":"c1","status":"active"}"#).unwrap();
        let association_shaped: HostnameCertificate = serde_json::from_str(
            r#"{"cert_id":"c2","cert_status":"pending_deployment","status":"active","hostname":"a.example.com","enabled":true}"#,
        )
        .unwrap();
        assert_eq!(certificate_shaped.certificate_id(), Some("c1"));
        assert_eq!(
            certificate_shaped.certificate_status(),
            Some(Status::Active)
        );
        assert_eq!(association_shaped.certificate_id(), Some("c2"));
        assert_eq!(
            association_shaped.certificate_status(),
            Some(Status::PendingDeployment)
        );
    }

    #[test]
    fn enabled_null_and_missing_read_as_voided() {
        let null: HostnameAssociation = serde_json::from_str(r#"{"enabled":null}"#).unwrap();
        let missing: HostnameAssociation = serde_json::from_str("{}").unwrap();
        let disabled: HostnameAssociation = serde_json::from_str(r#"{"enabled":false}"#).unwrap();
        assert_eq!(null.enabled, None);
        assert_eq!(missing.enabled, None);
        assert_eq!(disabled.enabled, Some(false));
    }

    #[test]
    fn private_key_is_not_retained() {
        let json =
            r#"{"id":"c1","certificate":"PEM","private_key":"-----BEGIN PRIVATE KEY-----SECRET"}"#;
        let item: HostnameCertificate = serde_json::from_str(json).unwrap();
        let debug = format!("{item:?}");
        let reserialized = serde_json::to_string(&item).unwrap();
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(!reserialized.contains("private_key"), "{reserialized}");
    }

    #[test]
    fn null_errors_and_messages_are_empty() {
        let envelope: Envelope<ZoneSettings> = serde_json::from_str(
            r#"{"success":true,"errors":null,"messages":null,"result":{"enabled":true}}"#,
        )
        .unwrap();
        assert!(envelope.errors.is_empty());
        assert_eq!(envelope.result.unwrap().enabled, Some(true));
    }
}
