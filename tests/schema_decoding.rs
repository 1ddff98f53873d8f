//! Property tests: bodies valid under Cloudflare's published schema for the endpoints this
//! product reads (every field optional, `result_info` fields `number`, ids strings that may be
//! empty, statuses from the enum or new ones, `enabled` true/false/null, unknown fields) always
//! decode, item by item, and no item with an id is lost.

mod common;

use std::collections::BTreeSet;

use cloudflare_aop_exporter::cloudflare::types::{
    Envelope, HostnameAssociation, HostnameCertificate, SkipReason, ZoneCertificate, decode_items,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// The documented statuses and one the API may add later.
fn statuses() -> Vec<&'static str> {
    common::API_STATUSES
        .into_iter()
        .chain(["quarantined"])
        .collect()
}

/// A JSON `number` as the schema allows it: integers (negative too) and floats.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        (0_u64..10_000).prop_map(Value::from),
        (-1.0e6_f64..1.0e6).prop_map(Value::from),
    ]
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[0-9a-f]{32}",
        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}",
    ]
}

fn timestamp() -> impl Strategy<Value = String> {
    (0_i64..4_000_000_000).prop_map(|seconds| {
        chrono::DateTime::from_timestamp(seconds, 0)
            .unwrap()
            .to_rfc3339()
    })
}

fn status() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(statuses()).prop_map(str::to_owned),
        "[a-z_]{1,20}",
    ]
}

/// An object with each of `fields` present or not (`null` allowed where the schema says so).
fn object(fields: Fields) -> impl Strategy<Value = Value> {
    let present: Vec<_> = fields
        .into_iter()
        .map(|(name, value)| proptest::option::of(value).prop_map(move |value| (name, value)))
        .collect();
    (present, proptest::option::of("[a-z]{3,8}")).prop_map(|(fields, extra)| {
        let mut object = Map::new();
        for (name, value) in fields {
            if let Some(value) = value {
                object.insert(name.to_owned(), value);
            }
        }
        if let Some(extra) = extra {
            // Fields the schema adds later are ignored.
            object.insert(format!("x_{extra}"), json!({"nested": [1, "two"]}));
        }
        Value::Object(object)
    })
}

fn string(strategy: impl Strategy<Value = String> + 'static) -> BoxedStrategy<Value> {
    strategy.prop_map(Value::String).boxed()
}

fn enabled() -> BoxedStrategy<Value> {
    prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool)].boxed()
}

type Fields = Vec<(&'static str, BoxedStrategy<Value>)>;

/// The certificate details every certificate object and every association carries.
fn certificate_details() -> Fields {
    vec![
        ("certificate", string("[ -~]{0,40}")),
        ("expires_on", string(timestamp())),
        ("issuer", string("[ -~]{0,20}")),
        ("serial_number", string("[0-9]{0,20}")),
        ("signature", string("[A-Za-z0-9]{0,20}")),
        ("status", string(status())),
    ]
}

/// `fields` and the certificate details.
fn with_certificate_details(mut fields: Fields) -> Fields {
    fields.extend(certificate_details());
    fields
}

/// A hostname-certificate list item, certificate-shaped or association-shaped.
fn hostname_certificate() -> impl Strategy<Value = Value> {
    object(with_certificate_details(vec![
        ("id", string(id())),
        ("uploaded_on", string(timestamp())),
        ("cert_id", string(id())),
        ("cert_status", string(status())),
        ("cert_uploaded_on", string(timestamp())),
        ("hostname", string("[a-z]{1,10}\\.example\\.com")),
        ("enabled", enabled()),
        ("private_key", string("[ -~]{0,20}")),
    ]))
}

fn association() -> impl Strategy<Value = Value> {
    object(with_certificate_details(vec![
        ("hostname", string("[a-z]{1,10}\\.example\\.com")),
        ("cert_id", string(id())),
        ("cert_status", string(status())),
        ("cert_updated_at", string(timestamp())),
        ("cert_uploaded_on", string(timestamp())),
        ("created_at", string(timestamp())),
        ("enabled", enabled()),
        ("updated_at", string(timestamp())),
    ]))
}

fn result_info() -> impl Strategy<Value = Value> {
    object(vec![
        ("page", number().boxed()),
        ("per_page", number().boxed()),
        ("count", number().boxed()),
        ("total_count", number().boxed()),
        ("total_pages", number().boxed()),
    ])
}

fn list_body(item: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    (
        proptest::collection::vec(item, 0..12),
        proptest::option::of(result_info()),
    )
        .prop_map(|(items, info)| {
            let mut body = json!({"success": true, "errors": [], "messages": [], "result": items});
            if let Some(info) = info {
                body["result_info"] = info;
            }
            body
        })
}

/// The ids a raw item carries (`id`, else `cert_id`), when not empty.
fn raw_id(item: &Value) -> Option<String> {
    ["id", "cert_id"]
        .into_iter()
        .filter_map(|field| item.get(field)?.as_str())
        .find(|id| !id.trim().is_empty())
        .map(str::to_owned)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hostname_certificate_lists_decode_item_by_item_and_lose_no_id(body in list_body(hostname_certificate())) {
        let envelope: Envelope<Vec<Value>> = serde_json::from_value(body).unwrap();
        let raw = envelope.result.unwrap_or_default();
        let expected_ids: BTreeSet<String> = raw.iter().filter_map(raw_id).collect();
        let decoded = decode_items::<HostnameCertificate>(raw);
        prop_assert!(decoded.skipped.iter().all(|item| item.reason != SkipReason::Undecodable),
            "schema-valid items never fail: {:?}", decoded.skipped);
        let ids: BTreeSet<String> = decoded.items.iter()
            .map(|item| item.certificate_id().unwrap().to_owned())
            .collect();
        prop_assert_eq!(ids.len(), decoded.items.len(), "one item per id");
        prop_assert_eq!(ids, expected_ids);
    }

    #[test]
    fn zone_certificate_lists_decode(body in list_body(hostname_certificate())) {
        let envelope: Envelope<Vec<Value>> = serde_json::from_value(body).unwrap();
        let decoded = decode_items::<ZoneCertificate>(envelope.result.unwrap_or_default());
        prop_assert!(decoded.skipped.iter().all(|item| item.reason != SkipReason::Undecodable));
        prop_assert!(decoded.items.iter().all(|item| item.id.as_deref().is_some_and(|id| !id.is_empty())));
    }

    #[test]
    fn associations_always_decode_and_an_empty_cert_id_is_none(item in association()) {
        let body = json!({"success": true, "errors": [], "messages": [], "result": item.clone()});
        let envelope: Envelope<HostnameAssociation> = serde_json::from_value(body).unwrap();
        let association = envelope.result.unwrap();
        prop_assert_eq!(association.cert_id.is_some(), item.get("cert_id").and_then(Value::as_str).is_some_and(|id| !id.trim().is_empty()));
        prop_assert_eq!(association.enabled, item.get("enabled").and_then(Value::as_bool));
    }
}
