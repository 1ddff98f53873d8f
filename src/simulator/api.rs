//! The simulated Cloudflare endpoints: routes, authentication and answers built from the
//! [`SimState`] with the product's own DTOs (so the simulator and the client agree on shapes).
//! No I/O here: `server.rs` does the HTTP around it.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode, header};
use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::scenario::{AssociationState, AuthSpec, DEFAULT_ACCOUNT, ListShape};
use super::state::{SimCertificate, SimHostname, SimState, SimZone};
use crate::cloudflare::Endpoint;
use crate::cloudflare::types::{
    ApiMessage, DnsRecord, Envelope, HostnameAssociation, HostnameCertificate, ResultInfo, Status,
    TokenVerification, Zone, ZoneSettings,
};

/// A marker inside the fake `private_key` (see `include_private_key`): grep logs, metrics and
/// output for it to prove the key was dropped.
pub const PRIVATE_KEY_MARKER: &str = "SIMULATOR-PRIVATE-KEY-MUST-NOT-LEAK";

/// DNS records per page when the request does not say (Cloudflare's default).
const DNS_DEFAULT_PER_PAGE: usize = 100;
/// The largest DNS page Cloudflare serves.
const DNS_MAX_PER_PAGE: usize = 5_000;
/// Zones per page when the request does not say, and the most Cloudflare serves.
const ZONES_DEFAULT_PER_PAGE: usize = 20;
const ZONES_MAX_PER_PAGE: usize = 50;

/// Which endpoint a request is for, with its path parameters (named as in
/// [`Endpoint::paths`]); the default is a request under `/client/v4` for no endpoint of ours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Route {
    endpoint: Option<Endpoint>,
    params: HashMap<String, String>,
}

impl Route {
    pub(crate) fn new(endpoint: Endpoint, params: HashMap<String, String>) -> Route {
        Route {
            endpoint: Some(endpoint),
            params,
        }
    }

    pub(crate) fn endpoint(&self) -> Option<Endpoint> {
        self.endpoint
    }

    /// The path parameter `name` (`zone_id`, `cert_id`, `hostname`, `account_id`).
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    pub(crate) fn zone_id(&self) -> Option<&str> {
        self.param("zone_id")
    }
}

/// An answer before it becomes HTTP: status, JSON body, optional `Retry-After`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiReply {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
    pub(crate) retry_after: Option<u64>,
}

impl ApiReply {
    /// `success: true` with `result` (and `result_info` for paged lists).
    pub(crate) fn ok(result: Value, result_info: Option<ResultInfo>) -> ApiReply {
        let envelope = Envelope {
            success: true,
            errors: Vec::new(),
            messages: Vec::new(),
            result: Some(result),
            result_info,
        };
        ApiReply {
            status: StatusCode::OK,
            body: to_json(&envelope),
            retry_after: None,
        }
    }

    /// `success: false` with one error.
    pub(crate) fn error(status: StatusCode, code: i64, message: &str) -> ApiReply {
        ApiReply::errors(status, vec![to_json(&api_message(code, message))])
    }

    /// `success: false` with these errors (`Value`s, so one can carry an `error_chain`).
    pub(crate) fn errors(status: StatusCode, errors: Vec<Value>) -> ApiReply {
        let envelope: Envelope<Value> = Envelope {
            success: false,
            errors: Vec::new(),
            messages: Vec::new(),
            result: None,
            result_info: None,
        };
        let mut body = to_json(&envelope);
        body["errors"] = Value::Array(errors);
        ApiReply {
            status,
            body,
            retry_after: None,
        }
    }

    /// 429 with code 971 and `Retry-After`.
    pub(crate) fn rate_limited(retry_after_secs: u64) -> ApiReply {
        ApiReply {
            retry_after: Some(retry_after_secs),
            ..ApiReply::error(
                StatusCode::TOO_MANY_REQUESTS,
                971,
                "Please wait and consider throttling your request speed",
            )
        }
    }

    /// 403 code 9109: a valid token asking for a zone (or account) it was not granted.
    ///
    /// Cloudflare answers a token scoped to other zones with 403 and "Unauthorized to access
    /// requested resource" (code 9109, the answer `/accounts/{other}/tokens/verify` gives
    /// too), not with the 400/7003 of a zone id that does not exist: so a client can tell "this
    /// credential lacks access" (fix the token or the account's zone list) from "no such zone".
    pub(crate) fn unauthorized_resource() -> ApiReply {
        ApiReply::error(
            StatusCode::FORBIDDEN,
            9109,
            "Unauthorized to access requested resource",
        )
    }

    /// 403 code 10000, Cloudflare's answer to a wrong token or key.
    pub(crate) fn authentication_error() -> ApiReply {
        ApiReply::error(StatusCode::FORBIDDEN, 10000, "Authentication error")
    }

    pub(crate) fn is_success(&self) -> bool {
        self.status.is_success() && self.body["success"] == Value::Bool(true)
    }
}

fn api_message(code: i64, message: &str) -> ApiMessage {
    ApiMessage {
        code: Some(code),
        message: Some(message.to_owned()),
        documentation_url: None,
    }
}

/// Serializing our DTOs cannot fail (string keys, no custom serializers that error); `Null`
/// keeps the request path panic-free should that ever change.
fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Which account the request's credentials belong to: the one whose bearer token it carries,
/// else the one whose email and key it carries; `None` when none matches (or none is given).
pub(crate) fn identify(state: &SimState, headers: &HeaderMap) -> Option<usize> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value.to_str().ok().and_then(bearer_token)?;
        return state.account_of_token(token);
    }
    let email = headers.get("x-auth-email").and_then(|v| v.to_str().ok())?;
    let key = headers.get("x-auth-key").and_then(|v| v.to_str().ok())?;
    (0..state.account_count()).find(|index| {
        state
            .account_auth(*index)
            .is_some_and(|auth| legacy_matches(auth, email, key))
    })
}

fn legacy_matches(auth: &AuthSpec, email: &str, key: &str) -> bool {
    matches!(
        (&auth.email, &auth.key),
        (Some(accepted_email), Some(accepted_key))
            if accepted_email.eq_ignore_ascii_case(email.trim()) && accepted_key == key.trim()
    )
}

/// Checks credentials like Cloudflare: a malformed `Authorization` is 400 6003 (with 6111 in
/// its `error_chain`), missing credentials 400 9106, wrong ones 403 10000. A token whose status
/// is not `active` only passes `/user/tokens/verify`, which reports that status.
pub(crate) fn authenticate(
    auth: &AuthSpec,
    headers: &HeaderMap,
    endpoint: Option<Endpoint>,
) -> Result<(), ApiReply> {
    let verifying = endpoint == Some(Endpoint::TokenVerify);
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let Some(token) = value.to_str().ok().and_then(bearer_token) else {
            let mut error = to_json(&api_message(6003, "Invalid request headers"));
            error["error_chain"] = json!([to_json(&api_message(
                6111,
                "Invalid format for Authorization header"
            ))]);
            return Err(ApiReply::errors(StatusCode::BAD_REQUEST, vec![error]));
        };
        // Plain comparison: a loopback test double, not a secret store.
        if token != auth.token || (!verifying && auth.token_status != "active") {
            return Err(ApiReply::authentication_error());
        }
        return Ok(());
    }
    let email = headers.get("x-auth-email").and_then(|v| v.to_str().ok());
    let key = headers.get("x-auth-key").and_then(|v| v.to_str().ok());
    let (Some(email), Some(key)) = (email, key) else {
        return Err(ApiReply::error(
            StatusCode::BAD_REQUEST,
            9106,
            "Missing X-Auth-Key, X-Auth-Email or Authorization headers",
        ));
    };
    if !legacy_matches(auth, email, key) {
        return Err(ApiReply::authentication_error());
    }
    if verifying {
        // A global API key is not a token: Cloudflare's verify endpoint refuses it.
        return Err(ApiReply::error(
            StatusCode::UNAUTHORIZED,
            1000,
            "Invalid API Token",
        ));
    }
    Ok(())
}

/// Token verification as Cloudflare answers it: a user-owned token verifies at
/// `/user/tokens/verify`; an account-owned token answers 401 there and verifies at
/// `/accounts/{its account}/tokens/verify`, where another account's id answers 403.
fn token_verification(auth: &AuthSpec, account_id: Option<&str>) -> ApiReply {
    let invalid = || ApiReply::error(StatusCode::UNAUTHORIZED, 1000, "Invalid API Token");
    match (auth.account_owned, account_id) {
        (false, None) => {}
        (true, Some(account_id)) if account_id == auth.account_id => {}
        (true, Some(_)) => return ApiReply::unauthorized_resource(),
        (false, Some(_)) | (true, None) => return invalid(),
    }
    let verification = TokenVerification {
        id: Some(auth.token_id.clone()),
        status: Some(auth.token_status.clone()),
        expires_on: None,
        not_before: None,
    };
    ApiReply::ok(to_json(&verification), None)
}

fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer")
        && !token.is_empty()
        && !token.contains(char::is_whitespace))
    .then_some(token)
}

/// The normal answer to a request authenticated as `account`. Takes `&mut` because a request
/// for page 1 of the hostname-certificate list is a poll, which moves the zone's timelines.
pub(crate) fn answer(
    state: &mut SimState,
    account: usize,
    route: &Route,
    query: Option<&str>,
    path: &str,
) -> ApiReply {
    let no_route = || ApiReply::error(StatusCode::BAD_REQUEST, 7000, "No route for that URI");
    let Some(endpoint) = route.endpoint() else {
        return no_route();
    };
    match endpoint {
        Endpoint::TokenVerify => {
            let Some(auth) = state.account_auth(account) else {
                return ApiReply::authentication_error();
            };
            return token_verification(auth, route.param("account_id"));
        }
        Endpoint::ZonesList => return zones_list(state, account, query),
        _ => {}
    }
    let Some(zone_id) = route.zone_id() else {
        return no_route();
    };
    let settings = state.settings.clone();
    let Some(zone) = state.zone_mut(zone_id) else {
        let api_path = path.strip_prefix("/client/v4").unwrap_or(path);
        let api_path = api_path.split('?').next().unwrap_or(api_path);
        return ApiReply::error(
            StatusCode::BAD_REQUEST,
            7003,
            &format!("Could not route to {api_path}, perhaps your object identifier is invalid?"),
        );
    };
    if zone.account != account {
        return ApiReply::unauthorized_resource();
    }
    let page = query_param(query, "page")
        .and_then(|page| page.parse::<usize>().ok())
        .filter(|page| *page >= 1)
        .unwrap_or(1);
    let private_key = settings.include_private_key;
    match endpoint {
        Endpoint::HostnameCertificatesList => {
            if page == 1 || settings.page_size.is_none() {
                zone.record_list_poll(Utc::now());
            }
            let zone = &*zone;
            let items: Vec<Value> = zone
                .certificates
                .iter()
                .filter(|certificate| certificate.listed)
                .map(|certificate| {
                    let item = match settings.list_shape {
                        ListShape::Certificate => certificate_item(zone, certificate),
                        ListShape::Association => association_list_item(zone, certificate),
                    };
                    with_private_key(item, private_key)
                })
                .collect();
            let (items, result_info) = paginate(items, settings.page_size, page);
            ApiReply::ok(Value::Array(items), result_info)
        }
        Endpoint::HostnameCertificateGet => {
            match route.param("cert_id").and_then(|id| zone.certificate(id)) {
                Some(certificate) => ApiReply::ok(
                    with_private_key(certificate_item(zone, certificate), private_key),
                    None,
                ),
                None => ApiReply::error(StatusCode::NOT_FOUND, 1003, "Certificate not found"),
            }
        }
        Endpoint::HostnameGet => match route.param("hostname").and_then(|name| zone.hostname(name))
        {
            Some(found) if found.association != AssociationState::Absent => ApiReply::ok(
                with_private_key(hostname_item(zone, found), private_key),
                None,
            ),
            _ => ApiReply::error(
                StatusCode::NOT_FOUND,
                1003,
                "No authenticated origin pull association found for hostname",
            ),
        },
        Endpoint::ZoneCertificatesList => {
            let zone = &*zone;
            let items: Vec<Value> = zone
                .zone_certificates
                .iter()
                .filter(|certificate| certificate.listed)
                .map(|certificate| {
                    with_private_key(certificate_item(zone, certificate), private_key)
                })
                .collect();
            let (items, result_info) = paginate(items, settings.page_size, page);
            ApiReply::ok(Value::Array(items), result_info)
        }
        Endpoint::ZoneSettingsGet => ApiReply::ok(
            to_json(&ZoneSettings {
                enabled: Some(zone.zone_level_enabled),
            }),
            None,
        ),
        Endpoint::DnsRecordsList => dns_records(zone, query, page),
        Endpoint::TokenVerify | Endpoint::ZonesList => no_route(),
    }
}

/// A query parameter, percent-decoded.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn paginate(
    items: Vec<Value>,
    page_size: Option<usize>,
    page: usize,
) -> (Vec<Value>, Option<ResultInfo>) {
    let Some(per_page) = page_size.filter(|size| *size > 0) else {
        return (items, None);
    };
    let total = items.len();
    let page_items: Vec<Value> = items
        .into_iter()
        .skip(per_page.saturating_mul(page - 1))
        .take(per_page)
        .collect();
    let info = ResultInfo {
        page: Some(to_u32(page)),
        per_page: Some(to_u32(per_page)),
        count: Some(to_u32(page_items.len())),
        total_count: Some(total as u64),
        total_pages: Some(to_u32(total.div_ceil(per_page))),
    };
    (page_items, Some(info))
}

fn to_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// Sets a status field to the raw string when it is one `Status` does not know (tests may
/// serve statuses Cloudflare might add), which the DTO would have turned into `unknown`.
fn with_raw_status(mut value: Value, field: &str, raw: &str) -> Value {
    if Status::parse(raw) == Status::Unknown {
        value[field] = Value::String(raw.to_owned());
    }
    value
}

fn with_private_key(mut value: Value, include: bool) -> Value {
    if include {
        value["private_key"] = Value::String(format!(
            "-----BEGIN PRIVATE KEY-----\n{PRIVATE_KEY_MARKER}\n-----END PRIVATE KEY-----\n"
        ));
    }
    value
}

/// A certificate-shaped item, of the hostname-certificate list (or get) and of the zone-level
/// list alike: both have the same fields.
fn certificate_item(zone: &SimZone, certificate: &SimCertificate) -> Value {
    let (status, _) = zone.status_of(&certificate.timeline);
    let item = HostnameCertificate {
        id: Some(certificate.id.clone()),
        certificate: Some(certificate.pem.clone()),
        expires_on: certificate.expires_on(),
        issuer: certificate.facts.issuer.clone(),
        serial_number: certificate.facts.serial_number.clone(),
        signature: certificate.facts.signature.clone(),
        status: Some(Status::parse(status)),
        uploaded_on: Some(certificate.uploaded_on),
        ..HostnameCertificate::default()
    };
    with_raw_status(to_json(&item), "status", status)
}

/// The older list shape: association field names, with the first enabled-or-disabled
/// association of the certificate (if any) filling `hostname`, `enabled` and `status`.
fn association_list_item(zone: &SimZone, certificate: &SimCertificate) -> Value {
    let (cert_status, cert_since) = zone.status_of(&certificate.timeline);
    let association = zone.hostnames.iter().find(|hostname| {
        hostname.cert_id.as_deref() == Some(certificate.id.as_str())
            && hostname.association != AssociationState::Absent
    });
    let (status, updated_at) = association.map_or((cert_status, cert_since), |hostname| {
        zone.status_of(&hostname.timeline)
    });
    let item = HostnameAssociation {
        hostname: association.map(|hostname| hostname.name.clone()),
        cert_id: Some(certificate.id.clone()),
        cert_status: Some(Status::parse(cert_status)),
        cert_updated_at: Some(cert_since),
        cert_uploaded_on: Some(certificate.uploaded_on),
        certificate: Some(certificate.pem.clone()),
        created_at: association.map(|hostname| hostname.created_at),
        enabled: association.and_then(|hostname| hostname.association.enabled()),
        expires_on: certificate.expires_on(),
        issuer: certificate.facts.issuer.clone(),
        serial_number: certificate.facts.serial_number.clone(),
        signature: certificate.facts.signature.clone(),
        status: Some(Status::parse(status)),
        updated_at: Some(updated_at),
    };
    let value = with_raw_status(to_json(&item), "cert_status", cert_status);
    with_raw_status(value, "status", status)
}

fn hostname_item(zone: &SimZone, hostname: &SimHostname) -> Value {
    let certificate = hostname
        .cert_id
        .as_deref()
        .and_then(|id| zone.certificate(id));
    let (status, since) = zone.status_of(&hostname.timeline);
    let certificate_status = certificate.map(|certificate| zone.status_of(&certificate.timeline));
    let cert_status: Option<&str> = hostname
        .cert_status
        .as_deref()
        .or(certificate_status.map(|(status, _)| status));
    let item = HostnameAssociation {
        hostname: Some(hostname.name.clone()),
        cert_id: hostname.cert_id.clone(),
        cert_status: cert_status.map(Status::parse),
        cert_updated_at: certificate_status.map(|(_, since)| since),
        cert_uploaded_on: certificate.map(|certificate| certificate.uploaded_on),
        certificate: certificate.map(|certificate| certificate.pem.clone()),
        created_at: Some(hostname.created_at),
        enabled: hostname.association.enabled(),
        expires_on: certificate.and_then(SimCertificate::expires_on),
        issuer: certificate.and_then(|certificate| certificate.facts.issuer.clone()),
        serial_number: certificate.and_then(|certificate| certificate.facts.serial_number.clone()),
        signature: certificate.and_then(|certificate| certificate.facts.signature.clone()),
        status: Some(Status::parse(status)),
        updated_at: Some(since),
    };
    let value = with_raw_status(to_json(&item), "status", status);
    match cert_status {
        Some(raw) => with_raw_status(value, "cert_status", raw),
        None => value,
    }
}

/// `GET /zones` as Cloudflare serves it to `account`'s token: only that account's zones,
/// filtered by `name` (exact, case-insensitive) and `account.id`, always paged (`per_page`
/// default 20, at most 50; more is a 400 like Cloudflare's).
fn zones_list(state: &SimState, account: usize, query: Option<&str>) -> ApiReply {
    let Some(auth) = state.account_auth(account) else {
        return ApiReply::authentication_error();
    };
    let per_page = query_param(query, "per_page")
        .map_or(Ok(ZONES_DEFAULT_PER_PAGE), |value| value.parse::<usize>())
        .unwrap_or(0);
    if !(5..=ZONES_MAX_PER_PAGE).contains(&per_page) {
        return ApiReply::error(
            StatusCode::BAD_REQUEST,
            1019,
            "per_page must be a number between 5 and 50",
        );
    }
    let page = query_param(query, "page")
        .and_then(|page| page.parse::<usize>().ok())
        .filter(|page| *page >= 1)
        .unwrap_or(1);
    let name = query_param(query, "name");
    let account_matches =
        query_param(query, "account.id").is_none_or(|account_id| account_id == auth.account_id);
    let zones: Vec<Value> = state
        .zones
        .iter()
        .filter(|zone| account_matches && zone.account == account)
        .filter(|zone| {
            name.as_deref()
                .is_none_or(|name| zone_name(zone).eq_ignore_ascii_case(name))
        })
        .map(|zone| {
            let mut value = to_json(&Zone {
                id: Some(zone.id.clone()),
                name: Some(zone_name(zone).to_owned()),
                status: Some("active".to_owned()),
            });
            // The `[auth]` account keeps the name it always had here.
            let account_name = if auth.name == DEFAULT_ACCOUNT {
                "Simulated account"
            } else {
                &auth.name
            };
            value["account"] = json!({ "id": auth.account_id, "name": account_name });
            value
        })
        .collect();
    let (zones, result_info) = paginate(zones, Some(per_page), page);
    ApiReply::ok(Value::Array(zones), result_info)
}

/// A zone's domain name; a scenario zone without one goes by its id.
fn zone_name(zone: &SimZone) -> &str {
    if zone.name.is_empty() {
        &zone.id
    } else {
        &zone.name
    }
}

/// Always paged (`per_page` default 100, at most 5,000), like Cloudflare's DNS list.
/// `proxied=false` lists nothing: every record the simulator knows is proxied.
fn dns_records(zone: &SimZone, query: Option<&str>, page: usize) -> ApiReply {
    let per_page = query_param(query, "per_page")
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(DNS_DEFAULT_PER_PAGE)
        .clamp(1, DNS_MAX_PER_PAGE);
    let wants_proxied = query_param(query, "proxied").is_none_or(|value| value != "false");
    let records: Vec<Value> = if wants_proxied {
        zone.dns_record_names()
            .into_iter()
            .map(|name| dns_record(zone, name))
            .collect()
    } else {
        Vec::new()
    };
    let (records, result_info) = paginate(records, Some(per_page), page);
    ApiReply::ok(Value::Array(records), result_info)
}

fn dns_record(zone: &SimZone, name: &str) -> Value {
    let apex = name.eq_ignore_ascii_case(&zone.name);
    let record = DnsRecord {
        id: Some(record_id(&zone.id, name)),
        name: Some(name.to_owned()),
        record_type: Some(if apex { "A" } else { "CNAME" }.to_owned()),
        proxied: Some(true),
    };
    let mut value = to_json(&record);
    // Fields a real record has that the DTO does not keep, so the shape looks like Cloudflare's.
    value["content"] = Value::String(if apex {
        "192.0.2.10".to_owned()
    } else {
        format!("origin.{}", zone.name)
    });
    value["ttl"] = json!(1);
    value["zone_id"] = Value::String(zone.id.clone());
    value
}

/// A stable 32-hex id, so records keep their ids across runs.
fn record_id(zone_id: &str, name: &str) -> String {
    let digest = Sha256::digest(format!("{zone_id}/{}", name.to_ascii_lowercase()).as_bytes());
    hex::encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudflare::ratelimit::header_map as headers;

    fn error_code(reply: &ApiReply) -> i64 {
        reply.body["errors"][0]["code"].as_i64().unwrap()
    }

    #[test]
    fn authentication_follows_cloudflare() {
        let auth = AuthSpec {
            email: Some("ops@example.com".to_owned()),
            key: Some("legacy-key".to_owned()),
            ..AuthSpec::default()
        };
        let zone = Some(Endpoint::HostnameGet);
        // The scheme is case-insensitive.
        for bearer in ["Bearer sim-token", "bearer sim-token"] {
            let given = headers(&[("authorization", bearer)]);
            assert!(authenticate(&auth, &given, zone).is_ok(), "{bearer}");
        }
        let missing = authenticate(&auth, &HeaderMap::new(), zone).unwrap_err();
        assert_eq!(
            (missing.status, error_code(&missing)),
            (StatusCode::BAD_REQUEST, 9106)
        );
        let malformed = authenticate(
            &auth,
            &headers(&[("authorization", "Token sim-token")]),
            zone,
        )
        .unwrap_err();
        assert_eq!(
            (malformed.status, error_code(&malformed)),
            (StatusCode::BAD_REQUEST, 6003)
        );
        assert_eq!(
            malformed.body["errors"][0]["error_chain"][0]["code"],
            json!(6111)
        );
        let wrong =
            authenticate(&auth, &headers(&[("authorization", "Bearer other")]), zone).unwrap_err();
        assert_eq!(
            (wrong.status, error_code(&wrong)),
            (StatusCode::FORBIDDEN, 10000)
        );
        let legacy = headers(&[
            ("x-auth-email", "OPS@example.com"),
            ("x-auth-key", "legacy-key"),
        ]);
        assert!(authenticate(&auth, &legacy, zone).is_ok());
        let verify = authenticate(&auth, &legacy, Some(Endpoint::TokenVerify)).unwrap_err();
        assert_eq!(verify.status, StatusCode::UNAUTHORIZED);
        let half = authenticate(
            &auth,
            &headers(&[("x-auth-email", "ops@example.com")]),
            zone,
        )
        .unwrap_err();
        assert_eq!(error_code(&half), 9106);
        let wrong_key = headers(&[("x-auth-email", "ops@example.com"), ("x-auth-key", "nope")]);
        assert_eq!(
            error_code(&authenticate(&auth, &wrong_key, zone).unwrap_err()),
            10000
        );
    }

    #[test]
    fn revoked_tokens_only_pass_verify() {
        let auth = AuthSpec {
            token_status: "disabled".to_owned(),
            ..AuthSpec::default()
        };
        let bearer = headers(&[("authorization", "Bearer sim-token")]);
        assert!(authenticate(&auth, &bearer, Some(Endpoint::TokenVerify)).is_ok());
        let refused = authenticate(&auth, &bearer, Some(Endpoint::ZoneSettingsGet)).unwrap_err();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn pages_split_items_and_describe_themselves() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let (page, info) = paginate(items.clone(), Some(2), 3);
        assert_eq!(page, vec![json!(4)]);
        assert_eq!(
            info,
            Some(ResultInfo {
                page: Some(3),
                per_page: Some(2),
                count: Some(1),
                total_count: Some(5),
                total_pages: Some(3),
            })
        );
        assert_eq!(paginate(items.clone(), None, 2), (items, None));
    }

    /// The zone names a `/zones` answer lists.
    fn names(reply: &ApiReply) -> Vec<String> {
        reply.body["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|zone| zone["name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_zone_list_filters_by_name_and_account_and_pages_by_at_most_50() {
        let scenario = crate::simulator::Scenario::scale(7, 0, 0);
        let state = SimState::build(&scenario, Utc::now()).unwrap();
        let by_name = zones_list(&state, 0, Some("name=ZONE-3.example"));
        assert_eq!(names(&by_name), ["zone-3.example"]);
        let account = format!("account.id={}", state.auth.account_id);
        assert_eq!(names(&zones_list(&state, 0, Some(&account))).len(), 7);
        assert!(names(&zones_list(&state, 0, Some("account.id=other"))).is_empty());
        let second = zones_list(&state, 0, Some("per_page=5&page=2"));
        assert_eq!(names(&second), ["zone-5.example", "zone-6.example"]);
        assert_eq!(second.body["result_info"]["total_pages"], json!(2));
        let refused = zones_list(&state, 0, Some("per_page=51"));
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(error_code(&refused), 1019);
    }

    fn two_accounts() -> SimState {
        use crate::simulator::{AccountSpec, Scenario};
        let mut scenario = Scenario::scale_accounts(2, 2, 0, 0);
        let agency = &mut scenario.accounts[0];
        agency.auth.email = Some("agency@example.com".to_owned());
        agency.auth.key = Some("agency-key".to_owned());
        let scenario = scenario.with_account(AccountSpec::new("owned", "owned-token"));
        let mut state = SimState::build(&scenario, Utc::now()).unwrap();
        state.accounts[1].auth.account_owned = true;
        state
    }

    #[test]
    fn the_credential_picks_the_account() {
        let state = two_accounts();
        let bearer = |token: &str| headers(&[("authorization", &format!("Bearer {token}"))]);
        assert_eq!(identify(&state, &bearer("sim-token")), Some(0));
        assert_eq!(identify(&state, &bearer("sim-token-1")), Some(1));
        assert_eq!(identify(&state, &bearer("owned-token")), Some(2));
        assert_eq!(identify(&state, &bearer("other")), None);
        assert_eq!(identify(&state, &HeaderMap::new()), None);
        let legacy = headers(&[
            ("x-auth-email", "AGENCY@example.com"),
            ("x-auth-key", "agency-key"),
        ]);
        assert_eq!(identify(&state, &legacy), Some(1));
    }

    #[test]
    fn a_token_sees_only_its_own_zones() {
        let mut state = two_accounts();
        let zone_of = |state: &SimState, account: usize| {
            state
                .zones
                .iter()
                .find(|zone| zone.account == account)
                .unwrap()
                .id
                .clone()
        };
        let (zone_a, zone_b) = (zone_of(&state, 0), zone_of(&state, 1));
        let settings = |zone: &str| {
            let mut params = HashMap::new();
            params.insert("zone_id".to_owned(), zone.to_owned());
            Route::new(Endpoint::ZoneSettingsGet, params)
        };
        assert!(answer(&mut state, 0, &settings(&zone_a), None, "").is_success());
        let refused = answer(&mut state, 0, &settings(&zone_b), None, "");
        assert_eq!(
            (refused.status, error_code(&refused)),
            (StatusCode::FORBIDDEN, 9109)
        );
        assert!(answer(&mut state, 1, &settings(&zone_b), None, "").is_success());
        let unknown = answer(
            &mut state,
            1,
            &settings("nope"),
            None,
            "/client/v4/zones/nope",
        );
        assert_eq!(
            (unknown.status, error_code(&unknown)),
            (StatusCode::BAD_REQUEST, 7003)
        );

        let listed = zones_list(&state, 1, None);
        assert_eq!(
            names(&listed),
            ["zone-0.account-1.example", "zone-1.account-1.example"]
        );
        assert_eq!(
            listed.body["result"][0]["account"]["id"],
            json!(state.accounts[0].auth.account_id)
        );
        assert_eq!(
            listed.body["result"][0]["account"]["name"],
            json!("account-1")
        );
        assert!(
            names(&zones_list(
                &state,
                0,
                Some("name=zone-0.account-1.example")
            ))
            .is_empty()
        );
        assert!(names(&zones_list(&state, 2, None)).is_empty());
    }

    #[test]
    fn verification_answers_for_the_callers_token() {
        let mut state = two_accounts();
        let verify = |account_id: Option<&str>| {
            let mut params = HashMap::new();
            if let Some(account_id) = account_id {
                params.insert("account_id".to_owned(), account_id.to_owned());
            }
            Route::new(Endpoint::TokenVerify, params)
        };
        let user = answer(&mut state, 1, &verify(None), None, "");
        assert_eq!(
            user.body["result"]["id"],
            json!(state.accounts[0].auth.token_id)
        );
        // The account-owned token verifies only under its own account.
        let owned_id = state.accounts[1].auth.account_id.clone();
        assert_eq!(
            answer(&mut state, 2, &verify(None), None, "").status,
            StatusCode::UNAUTHORIZED
        );
        let owned = answer(&mut state, 2, &verify(Some(&owned_id)), None, "");
        assert_eq!(
            owned.body["result"]["id"],
            json!(state.accounts[1].auth.token_id)
        );
        let other = state.auth.account_id.clone();
        let refused = answer(&mut state, 2, &verify(Some(&other)), None, "");
        assert_eq!(error_code(&refused), 9109);
    }

    #[test]
    fn unknown_statuses_are_served_verbatim() {
        let value = with_raw_status(json!({"status": "unknown"}), "status", "quarantined");
        assert_eq!(value["status"], json!("quarantined"));
        let value = with_raw_status(json!({"status": "active"}), "status", "active");
        assert_eq!(value["status"], json!("active"));
    }
}
