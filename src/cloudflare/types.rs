//! Cloudflare API data transfer objects: the envelope and every result shape this product reads.
//!
//! Tolerant by design: every field is optional, unknown fields are ignored (so `private_key`
//! is dropped at deserialization and never held in memory), and an unknown status value parses
//! as [`Status::Unknown`] instead of failing the poll. The simulator serializes the same types.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use strum::VariantArray as _;

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
#[serde(default)]
pub struct ApiMessage {
    pub code: Option<i64>,
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
///
/// Cloudflare's published API schema types every field as `number` and has no `total_pages` for
/// some lists: a float decodes (rounded down), and a negative or non-numeric value reads as
/// absent instead of failing the list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "RawResultInfo")]
pub struct ResultInfo {
    pub page: Option<u32>,
    pub per_page: Option<u32>,
    pub count: Option<u32>,
    pub total_count: Option<u64>,
    pub total_pages: Option<u32>,
}

/// `result_info` as sent, each field any JSON value.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawResultInfo {
    page: Option<serde_json::Value>,
    per_page: Option<serde_json::Value>,
    count: Option<serde_json::Value>,
    total_count: Option<serde_json::Value>,
    total_pages: Option<serde_json::Value>,
}

impl From<RawResultInfo> for ResultInfo {
    fn from(raw: RawResultInfo) -> Self {
        let count = |value: Option<serde_json::Value>| value.as_ref().and_then(count_of);
        let small = |value| count(value).map(|count| u32::try_from(count).unwrap_or(u32::MAX));
        ResultInfo {
            page: small(raw.page),
            per_page: small(raw.per_page),
            count: small(raw.count),
            total_count: count(raw.total_count),
            total_pages: small(raw.total_pages),
        }
    }
}

/// The fields that are known, in Cloudflare's order (unknown ones are left out, not `null`).
impl Serialize for ResultInfo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = [
            ("page", self.page.map(u64::from)),
            ("per_page", self.per_page.map(u64::from)),
            ("count", self.count.map(u64::from)),
            ("total_count", self.total_count),
            ("total_pages", self.total_pages.map(u64::from)),
        ];
        serializer.collect_map(
            fields
                .into_iter()
                .filter_map(|(name, value)| Some((name, value?))),
        )
    }
}

/// A JSON number as a non-negative count: floats round down, negatives, non-finite values
/// and non-numbers are `None`.
fn count_of(value: &serde_json::Value) -> Option<u64> {
    let number = value.as_number()?;
    if let Some(count) = number.as_u64() {
        return Some(count);
    }
    let float = number.as_f64()?;
    if !float.is_finite() || float < 0.0 {
        return None;
    }
    // Saturating, as `as` is from f64; the value is finite and non-negative here.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some(float.floor() as u64)
}

/// An identifier: the empty string (which the schema allows) is no identifier at all, so it
/// never becomes a request path such as `.../hostnames/certificates/`.
fn non_empty_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|id| !id.trim().is_empty()))
}

/// Statuses belong to the domain; the DTOs decode into it.
pub use crate::state::Status;

/// Declares a DTO of a certificate or of an association with its serving certificate: the
/// certificate details every such object of Cloudflare's carries, then the struct's own
/// fields. `certificate` first adds what a certificate object itself has (`id`, `uploaded_on`).
macro_rules! certificate_dto {
    (certificate $(#[$meta:meta])* pub struct $name:ident { $($own:tt)* }) => {
        certificate_dto! {
            $(#[$meta])*
            pub struct $name {
                #[serde(deserialize_with = "non_empty_id", skip_serializing_if = "Option::is_none")]
                pub id: Option<String>,
                #[serde(skip_serializing_if = "Option::is_none")]
                pub uploaded_on: Option<DateTime<Utc>>,
                $($own)*
            }
        }
    };
    ($(#[$meta:meta])* pub struct $name:ident { $($own:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
        #[serde(default)]
        pub struct $name {
            $($own)*
            /// The PEM body.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub certificate: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub expires_on: Option<DateTime<Utc>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub issuer: Option<String>,
            /// Decimal.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub serial_number: Option<String>,
            /// The signature algorithm.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub signature: Option<String>,
            /// The certificate's status, or the association's.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub status: Option<Status>,
        }
    };
}

certificate_dto! {
    certificate
    /// An item of the hostname-certificate list, or the result of getting one certificate.
    ///
    /// Cloudflare has returned two shapes here over time: certificate-shaped items (`id`,
    /// `status`) and association-shaped items (`cert_id`, `cert_status`, `hostname`,
    /// `enabled`). Both parse; use [`HostnameCertificate::certificate_id`] and
    /// [`HostnameCertificate::certificate_status`].
    pub struct HostnameCertificate {
        // Association-shaped items.
        #[serde(deserialize_with = "non_empty_id", skip_serializing_if = "Option::is_none")]
        pub cert_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cert_status: Option<Status>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cert_uploaded_on: Option<DateTime<Utc>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub hostname: Option<String>,
    }
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

certificate_dto! {
    /// GET `/zones/{zone_id}/origin_tls_client_auth/hostnames/{hostname}`: one hostname's
    /// association, with the details of the certificate serving it.
    pub struct HostnameAssociation {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub hostname: Option<String>,
        #[serde(deserialize_with = "non_empty_id", skip_serializing_if = "Option::is_none")]
        pub cert_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cert_status: Option<Status>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cert_updated_at: Option<DateTime<Utc>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cert_uploaded_on: Option<DateTime<Utc>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub created_at: Option<DateTime<Utc>>,
        /// `true`, `false`, or `null` (the association was voided). A missing field reads as
        /// `null`.
        pub enabled: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub updated_at: Option<DateTime<Utc>>,
    }
}

certificate_dto! {
    certificate
    /// An item of GET `/zones/{zone_id}/origin_tls_client_auth`: a zone-level AOP certificate.
    pub struct ZoneCertificate {}
}

/// GET `/zones/{zone_id}/origin_tls_client_auth/settings`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ZoneSettings {
    pub enabled: Option<bool>,
}

/// GET `/user/tokens/verify`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct TokenVerification {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `active`, `disabled` or `expired`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
#[serde(default)]
pub struct DnsRecord {
    #[serde(deserialize_with = "non_empty_id")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub record_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxied: Option<bool>,
}

/// An item of GET `/zones` (only what zone resolution and discovery read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Zone {
    #[serde(deserialize_with = "non_empty_id")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `active`, `pending`, `initializing`, `moved`, `deleted`, `deactivated`, or newer values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// Why a list item was left out: the `reason` label of `api_items_skipped_total`.
#[derive(strum::IntoStaticStr, strum::Display, strum::EnumIter, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// The item does not decode as the endpoint's item type (a malformed date, a wrong type).
    Undecodable,
    /// The item has no identifier (`id`, or `cert_id` for association-shaped items).
    MissingId,
    /// A second item with an identifier already listed, with another status: merged into the
    /// first, the worse status kept (copies that agree are merged silently).
    DuplicateId,
}

impl SkipReason {
    /// Every reason, in label order.
    pub const ALL: [SkipReason; SkipReason::VARIANTS.len()] = crate::labels::every();

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// An item of a list endpoint: identified, and mergeable when listed twice.
pub trait ListItem: Sized {
    /// The identifier items are deduplicated by.
    fn item_id(&self) -> Option<&str>;

    /// How alarming the item's status is, for keeping the worst of two copies (higher is worse).
    fn status_rank(&self) -> u8 {
        0
    }

    /// The status, for the log line of a duplicate.
    fn status_label(&self) -> &'static str {
        "none"
    }
}

/// Higher is worse: a timed-out status hides nothing behind it, pending may still finish,
/// unknown is unknown, deleted and active are settled.
fn rank(status: Option<Status>) -> u8 {
    match status {
        Some(Status::DeploymentTimedOut | Status::DeletionTimedOut) => 5,
        Some(Status::Initializing | Status::PendingDeployment | Status::PendingDeletion) => 4,
        Some(Status::Unknown) => 3,
        None => 2,
        Some(Status::Deleted) => 1,
        Some(Status::Active) => 0,
    }
}

impl ListItem for HostnameCertificate {
    fn item_id(&self) -> Option<&str> {
        self.certificate_id()
    }
    fn status_rank(&self) -> u8 {
        rank(self.certificate_status())
    }
    fn status_label(&self) -> &'static str {
        self.certificate_status().map_or("none", Status::as_str)
    }
}

impl ListItem for ZoneCertificate {
    fn item_id(&self) -> Option<&str> {
        self.id.as_deref()
    }
    fn status_rank(&self) -> u8 {
        rank(self.status)
    }
    fn status_label(&self) -> &'static str {
        self.status.map_or("none", Status::as_str)
    }
}

impl ListItem for DnsRecord {
    fn item_id(&self) -> Option<&str> {
        self.id.as_deref().or(self.name.as_deref())
    }
}

impl ListItem for Zone {
    fn item_id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

/// One list item left out (or merged), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedItem {
    /// Its position in the list (all pages, from 0).
    pub index: usize,
    /// Its identifier, when one could be read.
    pub id: Option<String>,
    /// Why.
    pub reason: SkipReason,
    /// What was wrong, for the log (never a body: at most a field name and a type).
    pub detail: String,
}

/// A list decoded item by item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedList<T> {
    /// The items that decoded, one per identifier, in list order.
    pub items: Vec<T>,
    /// What was left out or merged.
    pub skipped: Vec<SkippedItem>,
}

impl<T> Default for DecodedList<T> {
    fn default() -> Self {
        DecodedList {
            items: Vec::new(),
            skipped: Vec::new(),
        }
    }
}

/// The identifier of a raw item, read without decoding it (`id`, else `cert_id`).
pub fn raw_item_id(item: &serde_json::Value) -> Option<&str> {
    ["id", "cert_id"]
        .into_iter()
        .filter_map(|field| item.get(field)?.as_str())
        .find(|id| !id.trim().is_empty())
}

/// At most 160 characters of an error: serde quotes a wrongly typed value, which may be long.
fn short(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(160) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Decodes a list's raw items one by one: one bad item never costs its neighbours. Items that
/// do not decode or carry no identifier are skipped; items listed twice are merged into the
/// first copy's place, keeping the copy with the worse status. Every skip is reported.
pub fn decode_items<T: DeserializeOwned + ListItem>(raw: Vec<serde_json::Value>) -> DecodedList<T> {
    let mut decoded = DecodedList::default();
    let mut position_by_id: std::collections::HashMap<String, usize> =
        std::collections::HashMap::new();
    for (index, value) in raw.into_iter().enumerate() {
        let raw_id = raw_item_id(&value).map(str::to_owned);
        let item = match T::deserialize(value) {
            Ok(item) => item,
            Err(error) => {
                decoded.skipped.push(SkippedItem {
                    index,
                    id: raw_id,
                    reason: SkipReason::Undecodable,
                    detail: short(error.to_string()),
                });
                continue;
            }
        };
        let Some(id) = item.item_id().map(str::to_owned) else {
            decoded.skipped.push(SkippedItem {
                index,
                id: None,
                reason: SkipReason::MissingId,
                detail: "no id".to_owned(),
            });
            continue;
        };
        match position_by_id.get(&id) {
            None => {
                position_by_id.insert(id, decoded.items.len());
                decoded.items.push(item);
            }
            Some(&position) => {
                let first = &mut decoded.items[position];
                // Association-shaped lists repeat a certificate once per hostname: copies that
                // agree are one certificate, nothing to report.
                if item.status_label() == first.status_label() {
                    continue;
                }
                let (kept, other) = if item.status_rank() > first.status_rank() {
                    (item.status_label(), first.status_label())
                } else {
                    (first.status_label(), item.status_label())
                };
                decoded.skipped.push(SkippedItem {
                    index,
                    id: Some(id),
                    reason: SkipReason::DuplicateId,
                    detail: format!("listed twice (statuses {kept} and {other}): keeping {kept}"),
                });
                if item.status_rank() > first.status_rank() {
                    *first = item;
                }
            }
        }
    }
    decoded
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
    fn result_info_numbers_decode_as_the_schema_types_them() {
        let info: ResultInfo = serde_json::from_str(
            r#"{"page":1.0,"per_page":50.7,"count":-3,"total_count":1e2,"total_pages":"2"}"#,
        )
        .unwrap();
        assert_eq!(info.page, Some(1));
        assert_eq!(info.per_page, Some(50));
        assert_eq!(info.count, None, "a negative count is no count");
        assert_eq!(info.total_count, Some(100));
        assert_eq!(info.total_pages, None, "not a number");
        let huge: ResultInfo = serde_json::from_str(r#"{"total_pages":1e300}"#).unwrap();
        assert_eq!(huge.total_pages, Some(u32::MAX));
    }

    #[test]
    fn empty_ids_are_absent() {
        let association: HostnameAssociation =
            serde_json::from_str(r#"{"cert_id":"","enabled":true}"#).unwrap();
        assert_eq!(association.cert_id, None);
        let item: HostnameCertificate =
            serde_json::from_str(r#"{"id":"","cert_id":"c2"}"#).unwrap();
        assert_eq!(item.certificate_id(), Some("c2"));
        let zone: ZoneCertificate = serde_json::from_str(r#"{"id":"  "}"#).unwrap();
        assert_eq!(zone.id, None);
    }

    fn raw(json: &str) -> Vec<serde_json::Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn one_bad_item_does_not_cost_its_neighbours_and_is_reported() {
        let decoded = decode_items::<HostnameCertificate>(raw(r#"[
                {"id":"a","status":"active","expires_on":"2030-01-01T00:00:00Z"},
                {"id":"b","status":"active","expires_on":"not a date"},
                {"status":"active"},
                {"id":"","status":"active"},
                {"id":"c","status":"pending_deployment"}
            ]"#));
        let ids: Vec<_> = decoded
            .items
            .iter()
            .filter_map(|item| item.id.as_deref())
            .collect();
        assert_eq!(ids, ["a", "c"]);
        let skipped: Vec<_> = decoded
            .skipped
            .iter()
            .map(|item| (item.index, item.id.as_deref(), item.reason))
            .collect();
        assert_eq!(
            skipped,
            [
                (1, Some("b"), SkipReason::Undecodable),
                (2, None, SkipReason::MissingId),
                (3, None, SkipReason::MissingId),
            ]
        );
        assert!(
            !decoded.skipped[0].detail.contains("not a date"),
            "no body in the detail"
        );
    }

    #[test]
    fn duplicate_ids_keep_the_worst_status_and_say_so() {
        let decoded = decode_items::<HostnameCertificate>(raw(r#"[
                {"cert_id":"c1","cert_status":"active","hostname":"a.example"},
                {"cert_id":"c1","cert_status":"active","hostname":"b.example"},
                {"cert_id":"c1","cert_status":"deployment_timed_out","hostname":"c.example"},
                {"cert_id":"c1","cert_status":"pending_deployment","hostname":"d.example"}
            ]"#));
        assert_eq!(decoded.items.len(), 1);
        assert_eq!(
            decoded.items[0].certificate_status(),
            Some(Status::DeploymentTimedOut)
        );
        // The agreeing copy (b) is one certificate listed per hostname: not reported.
        let reported: Vec<_> = decoded.skipped.iter().map(|item| item.index).collect();
        assert_eq!(reported, [2, 3]);
        assert!(
            decoded.skipped[0]
                .detail
                .contains("keeping deployment_timed_out"),
            "{}",
            decoded.skipped[0].detail
        );
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
