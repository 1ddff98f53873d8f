//! What the integration tests share: one local HTTP receiver (Slack, webhook and
//! Alertmanager-style sinks), one `/metrics` text parser, one settings builder on top of the
//! library's demo settings, a temporary directory for test files, and the start-up helpers
//! for the simulator, the exporter, the daemon and child processes.
//!
//! Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

/// The statuses Cloudflare's API documents, in the order the metrics expose them.
pub const API_STATUSES: [&str; 7] = [
    "initializing",
    "pending_deployment",
    "pending_deletion",
    "active",
    "deleted",
    "deployment_timed_out",
    "deletion_timed_out",
];

pub mod files;
pub mod kube;
pub mod metrics_text;
pub mod process;
pub mod receiver;
pub mod setup;
