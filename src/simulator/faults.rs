//! Faults injected at run time: what Cloudflare (or the network) does on a bad day.
//!
//! Rules are checked in order. `Latency` rules stack: each matching one delays the request
//! and the search goes on; the first other matching rule decides the answer. A rule with
//! `times` applies to that many matching requests, then expires.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cloudflare::Endpoint;

/// One kind of misbehaviour. JSON: `{"kind": "server_error", "status": 503}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[strum(serialize_all = "snake_case")]
pub enum Fault {
    /// Delay the answer by `ms` milliseconds (stacks with other rules).
    Latency {
        /// Milliseconds.
        ms: u64,
    },
    /// Answer `status` (5xx) with Cloudflare's error envelope.
    ServerError {
        /// The HTTP status.
        status: u16,
    },
    /// 429 with `Retry-After` and code 971.
    RateLimited {
        /// The `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// HTTP 200 with a body that is not JSON.
    MalformedJson,
    /// HTTP 200 with `success: false` and this error.
    SuccessFalse {
        /// The error code.
        code: i64,
        /// The error message.
        message: String,
    },
    /// Declares a `Content-Length` larger than what it sends, then ends the body with an
    /// error, so the client sees a body read error after the headers.
    Truncated,
    /// Never answers (sleeps an hour; cancelled when the simulator shuts down).
    Hang,
    /// The normal answer, padded with whitespace to `bytes` bytes (capped at 256 MiB).
    HugeBody {
        /// The body size.
        bytes: usize,
    },
    /// The normal answer with wrongly typed fields (`"status": 42`, `"enabled": "yes"`,
    /// `"expires_on": 17`), so typed decoding fails.
    WrongTypes,
    /// 403 code 10000 whatever the credentials.
    AuthFailure,
}

impl Fault {
    /// The `kind` tag.
    pub fn kind(&self) -> &'static str {
        self.into()
    }
}

/// A fault and which requests it applies to.
///
/// JSON: `{"fault": {"kind": "hang"}, "endpoint": "hostname_get", "zone_id": "…", "account":
/// "…", "times": 2}` (`endpoint`, `zone_id`, `account` and `times` optional).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// What happens.
    pub fault: Fault,
    /// Only requests to this endpoint (`None`: any, including unknown routes).
    #[serde(
        default,
        with = "endpoint_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub endpoint: Option<Endpoint>,
    /// Only requests for this zone (`None`: any, including `/user/tokens/verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<String>,
    /// Only requests carrying this account's credential, by account name (`None`: any,
    /// including requests with no known credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Applies to the next N matching requests, then expires (`None`: until cleared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

impl FaultRule {
    /// `fault` on every request until cleared.
    pub fn always(fault: Fault) -> FaultRule {
        FaultRule {
            fault,
            endpoint: None,
            zone_id: None,
            account: None,
            times: None,
        }
    }

    /// Only on `endpoint`.
    #[must_use]
    pub fn on(mut self, endpoint: Endpoint) -> FaultRule {
        self.endpoint = Some(endpoint);
        self
    }

    /// Only for `zone_id`.
    #[must_use]
    pub fn zone(mut self, zone_id: impl Into<String>) -> FaultRule {
        self.zone_id = Some(zone_id.into());
        self
    }

    /// Only for requests with the credential of the account named `account`.
    #[must_use]
    pub fn account(mut self, account: impl Into<String>) -> FaultRule {
        self.account = Some(account.into());
        self
    }

    /// Only the next `times` matching requests.
    #[must_use]
    pub fn times(mut self, times: u32) -> FaultRule {
        self.times = Some(times);
        self
    }

    fn matches(
        &self,
        endpoint: Option<Endpoint>,
        zone_id: Option<&str>,
        account: Option<&str>,
    ) -> bool {
        self.endpoint.is_none_or(|wanted| Some(wanted) == endpoint)
            && self
                .zone_id
                .as_deref()
                .is_none_or(|wanted| Some(wanted) == zone_id)
            && self
                .account
                .as_deref()
                .is_none_or(|wanted| Some(wanted) == account)
    }

    /// Counts one use; `false` once the rule is used up.
    fn consume(&mut self) -> bool {
        match &mut self.times {
            None => true,
            Some(left) => {
                *left = left.saturating_sub(1);
                *left > 0
            }
        }
    }
}

/// The active rules.
#[derive(Debug, Default)]
pub(crate) struct FaultBook {
    rules: Vec<FaultRule>,
}

impl FaultBook {
    pub(crate) fn add(&mut self, rule: FaultRule) {
        // `times = 0` would never apply: not worth keeping.
        if rule.times != Some(0) {
            self.rules.push(rule);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    pub(crate) fn rules(&self) -> &[FaultRule] {
        &self.rules
    }

    /// The total delay of the matching `Latency` rules (each counts one use).
    pub(crate) fn take_latency(
        &mut self,
        endpoint: Option<Endpoint>,
        zone_id: Option<&str>,
        account: Option<&str>,
    ) -> Duration {
        let mut delay = Duration::ZERO;
        self.rules.retain_mut(|rule| match rule.fault {
            Fault::Latency { ms } if rule.matches(endpoint, zone_id, account) => {
                delay += Duration::from_millis(ms);
                rule.consume()
            }
            _ => true,
        });
        delay
    }

    /// The first matching non-latency fault (counting one use of its rule).
    pub(crate) fn take_fault(
        &mut self,
        endpoint: Option<Endpoint>,
        zone_id: Option<&str>,
        account: Option<&str>,
    ) -> Option<Fault> {
        let index = self.rules.iter().position(|rule| {
            !matches!(rule.fault, Fault::Latency { .. }) && rule.matches(endpoint, zone_id, account)
        })?;
        let fault = self.rules[index].fault.clone();
        if !self.rules[index].consume() {
            self.rules.remove(index);
        }
        Some(fault)
    }
}

/// [`Endpoint`] as its label string (`"hostname_get"`), for rules sent as JSON.
pub(crate) mod endpoint_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::cloudflare::Endpoint;

    pub(crate) fn parse(value: &str) -> Option<Endpoint> {
        value.parse().ok()
    }

    #[allow(clippy::ref_option, clippy::trivially_copy_pass_by_ref)] // serde's `with` hands us `&Option<T>`.
    pub(crate) fn serialize<S: Serializer>(
        endpoint: &Option<Endpoint>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match endpoint {
            Some(endpoint) => serializer.serialize_some(endpoint.as_str()),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Endpoint>, D::Error> {
        let Some(value) = Option::<String>::deserialize(deserializer)? else {
            return Ok(None);
        };
        parse(&value).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown endpoint {value:?}, expected one of {}",
                Endpoint::ALL.map(Endpoint::as_str).join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip_as_json() {
        let rule = FaultRule::always(Fault::ServerError { status: 503 })
            .on(Endpoint::HostnameGet)
            .zone("z1")
            .times(2);
        let json = serde_json::to_string(&rule).unwrap();
        assert_eq!(
            json,
            r#"{"fault":{"kind":"server_error","status":503},"endpoint":"hostname_get","zone_id":"z1","times":2}"#
        );
        assert_eq!(serde_json::from_str::<FaultRule>(&json).unwrap(), rule);
        let bare: FaultRule = serde_json::from_str(r#"{"fault":{"kind":"hang"}}"#).unwrap();
        assert_eq!(bare, FaultRule::always(Fault::Hang));
        assert!(
            serde_json::from_str::<FaultRule>(r#"{"fault":{"kind":"hang"},"endpoint":"nope"}"#)
                .is_err()
        );
    }

    #[test]
    fn first_match_wins_and_times_expire() {
        let mut book = FaultBook::default();
        book.add(FaultRule::always(Fault::MalformedJson).on(Endpoint::TokenVerify));
        book.add(FaultRule::always(Fault::Truncated).zone("z1").times(2));
        book.add(FaultRule::always(Fault::AuthFailure));
        book.add(FaultRule::always(Fault::Hang).times(0));
        assert_eq!(book.rules().len(), 3, "times = 0 is dropped");

        assert_eq!(
            book.take_fault(Some(Endpoint::TokenVerify), None, None),
            Some(Fault::MalformedJson)
        );
        assert_eq!(
            book.take_fault(Some(Endpoint::HostnameGet), Some("z1"), None),
            Some(Fault::Truncated)
        );
        assert_eq!(
            book.take_fault(Some(Endpoint::HostnameGet), Some("z2"), None),
            Some(Fault::AuthFailure)
        );
        assert_eq!(
            book.take_fault(Some(Endpoint::HostnameGet), Some("z1"), None),
            Some(Fault::Truncated)
        );
        assert_eq!(
            book.take_fault(Some(Endpoint::HostnameGet), Some("z1"), None),
            Some(Fault::AuthFailure)
        );
        assert_eq!(book.rules().len(), 2);
        book.clear();
        assert_eq!(book.take_fault(None, None, None), None);
    }

    #[test]
    fn account_rules_match_only_that_accounts_requests() {
        let mut book = FaultBook::default();
        book.add(
            FaultRule::always(Fault::RateLimited {
                retry_after_secs: 60,
            })
            .account("b"),
        );
        let json = serde_json::to_string(&book.rules()[0]).unwrap();
        assert!(json.contains(r#""account":"b""#), "{json}");
        assert_eq!(
            book.take_fault(Some(Endpoint::ZonesList), None, Some("a")),
            None
        );
        assert_eq!(book.take_fault(Some(Endpoint::ZonesList), None, None), None);
        assert_eq!(
            book.take_fault(Some(Endpoint::ZonesList), None, Some("b")),
            Some(Fault::RateLimited {
                retry_after_secs: 60
            })
        );
    }

    #[test]
    fn latency_rules_stack_and_do_not_answer() {
        let mut book = FaultBook::default();
        book.add(FaultRule::always(Fault::Latency { ms: 30 }));
        book.add(
            FaultRule::always(Fault::Latency { ms: 20 })
                .on(Endpoint::HostnameGet)
                .times(1),
        );
        book.add(FaultRule::always(Fault::ServerError { status: 502 }).on(Endpoint::HostnameGet));
        assert_eq!(
            book.take_latency(Some(Endpoint::HostnameGet), None, None),
            Duration::from_millis(50)
        );
        assert_eq!(
            book.take_fault(Some(Endpoint::HostnameGet), None, None),
            Some(Fault::ServerError { status: 502 })
        );
        assert_eq!(
            book.take_latency(Some(Endpoint::HostnameGet), None, None),
            Duration::from_millis(30)
        );
        assert_eq!(
            book.take_fault(Some(Endpoint::TokenVerify), None, None),
            None
        );
    }
}
