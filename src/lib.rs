//! cloudflare-aop-exporter: watches Cloudflare Authenticated Origin Pulls certificates and
//! hostname associations, and exports their expiry, deployment status and enabled state.
//!
//! Data flows one way: [`config`] → [`cloudflare`] (client, types) → [`poller`] → [`state`] →
//! [`metrics`] and [`alerts`]. Each producer owns its vocabulary (a poll outcome, an alert
//! reason, a status of the domain) and reports through a small observer trait that
//! [`metrics::Metrics`] implements; only the wiring ([`daemon`]) and the [`server`] use
//! `metrics`. The [`simulator`] is a fake Cloudflare API for the demo and the tests.

pub mod alerts;
pub mod check;
pub mod cloudflare;
pub mod config;
pub mod daemon;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod poller;
pub mod secret;
pub mod server;
pub mod simulator;
pub mod state;
pub mod web_config;
pub mod x509;
