//! cloudflare-aop-exporter: watches Cloudflare Authenticated Origin Pulls certificates and
//! hostname associations, and exports their expiry, deployment status and enabled state.
//!
//! Data flows one way: [`config`] → [`cloudflare`] (client, types) → poller → state → metrics
//! and alerts. The [`simulator`] is a fake Cloudflare API for the demo and the tests.

pub mod cloudflare;
pub mod config;
pub mod secret;
pub mod simulator;
pub mod state;
pub mod x509;
