//! Delivery: one worker task per sink, draining that sink's queue in the outbox in order.
//!
//! At-least-once: a notification leaves the outbox only after the sink accepted it (2xx), was
//! rejected for good (a 4xx other than 429), or outlived the sink's `max_age`. 429 (after its
//! `Retry-After`), 5xx, timeouts and network errors are retried with exponential backoff and
//! jitter. `notifications_total` counts `sent` per delivered notification, `failed` per failed
//! attempt (a retried notification can fail several times) and `dropped` per notification given
//! up on (rejected, or too old).
//!
//! This is the only place that sees a sink's URL and HMAC secret: errors are built from
//! `reqwest` errors stripped of their URL, and logs name the sink.

use std::error::Error as _;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use chrono::Utc;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use tokio::sync::{Notify, watch};

use super::outbox::{Notification, SharedOutbox};
use super::{AlertObserver, NotificationOutcome};
use super::{TransitionKind, alertmanager, slack, webhook};
use crate::cloudflare::ratelimit::retry_after;
use crate::config::{SinkKind, SinkSettings};

/// Alertmanager takes many alerts per post; other sinks one notification per request.
const ALERTMANAGER_BATCH: usize = 64;

/// How a sink's worker retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOptions {
    /// First backoff delay; doubles per failed attempt, with jitter.
    pub initial_backoff: Duration,
    /// Largest backoff delay.
    pub max_backoff: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        // Quick enough that a blip costs seconds; slow enough at the cap not to hammer a sink
        // that is down for hours (the max age bounds the whole effort).
        RetryOptions {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// Why one delivery attempt failed. Never carries a URL or secret.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The sink answered with a non-2xx status.
    #[error("the sink answered HTTP {status}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// Its `Retry-After`, when it sent one (in seconds).
        retry_after: Option<Duration>,
    },
    /// No answer: connection, TLS, timeout, or a broken response.
    #[error("request failed: {}", describe(.0))]
    Request(#[source] reqwest::Error),
    /// The body could not be encoded (a bug).
    #[error("cannot encode the notification: {0}")]
    Encode(#[source] serde_json::Error),
    /// The HMAC could not be computed (a bug: HMAC takes any key length).
    #[error("cannot sign the notification: {0}")]
    Signature(#[source] hmac::digest::InvalidLength),
}

impl DeliveryError {
    /// A reqwest error, with its URL removed (sink URLs are secrets).
    fn request(error: reqwest::Error) -> DeliveryError {
        DeliveryError::Request(error.without_url())
    }
}

/// A reqwest error and its causes on one line ("error sending request: tcp connect error: …").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    if error.is_timeout() && !text.contains("timed out") {
        text.push_str(" (timed out)");
    }
    text
}

/// What to do after an attempt.
#[derive(Debug)]
enum Verdict {
    Delivered,
    /// Try again after `Retry-After`, else the backoff.
    Retry(Option<Duration>, DeliveryError),
    /// The sink will never accept it.
    GiveUp(DeliveryError),
}

/// One sink's worker: woken by `waker` when its queue gets work, ended by `stop`.
pub struct SinkWorker {
    pub(super) sink: SinkSettings,
    pub(super) outbox: Arc<SharedOutbox>,
    pub(super) observer: Arc<dyn AlertObserver>,
    pub(super) http: reqwest::Client,
    pub(super) retry: RetryOptions,
    pub(super) waker: Arc<Notify>,
    pub(super) stop: watch::Receiver<bool>,
}

impl SinkWorker {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Waits for `stop`; also returns if the sender is gone.
    async fn stop_signal(stop: &mut watch::Receiver<bool>) {
        let _ = stop.wait_for(|stopped| *stopped).await;
    }

    /// Sleeps for `delay`; `false` if told to stop meanwhile.
    async fn pause(&mut self, delay: Duration) -> bool {
        let mut stop = self.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = Self::stop_signal(&mut stop) => false,
        }
    }

    /// Drains the queue until told to stop. A request in flight at stop is abandoned; its
    /// notification stays in the outbox and is sent again after the restart (at-least-once).
    pub async fn run(mut self) {
        let name = self.sink.name.clone();
        let batch_size = match self.sink.kind {
            SinkKind::Alertmanager => ALERTMANAGER_BATCH,
            SinkKind::Slack | SinkKind::Webhook => 1,
        };
        // Present while the head of the queue keeps failing; reset by any success or drop.
        let mut backoff: Option<ExponentialBackoff> = None;
        let mut failed_attempts: u32 = 0;
        loop {
            if self.stopped() {
                return;
            }
            let batch = self.outbox.read(|outbox| outbox.front(&name, batch_size));
            if batch.is_empty() {
                backoff = None;
                failed_attempts = 0;
                let waker = self.waker.clone();
                let mut stop = self.stop.clone();
                tokio::select! {
                    () = waker.notified() => {}
                    () = Self::stop_signal(&mut stop) => return,
                }
                continue;
            }
            if self.drop_expired(&batch) {
                backoff = None;
                failed_attempts = 0;
                continue;
            }

            let mut stop = self.stop.clone();
            let verdict = tokio::select! {
                verdict = self.attempt(&batch) => verdict,
                () = Self::stop_signal(&mut stop) => return,
            };
            let ids: Vec<u64> = batch.iter().map(|notification| notification.id).collect();
            match verdict {
                Verdict::Delivered => {
                    let removed = self.outbox.update(|outbox| outbox.remove(&name, &ids));
                    for notification in &batch {
                        self.observer.notification(&name, NotificationOutcome::Sent);
                        self.log_delivered(notification, failed_attempts);
                    }
                    if removed < ids.len() {
                        tracing::debug!(sink = %name, "some delivered posts were superseded meanwhile");
                    }
                    backoff = None;
                    failed_attempts = 0;
                }
                Verdict::GiveUp(error) => {
                    self.outbox.update(|outbox| outbox.remove(&name, &ids));
                    for notification in &batch {
                        self.observer
                            .notification(&name, NotificationOutcome::Failed);
                        self.observer
                            .notification(&name, NotificationOutcome::Dropped);
                        tracing::error!(
                            sink = %name,
                            error = %error,
                            fingerprint = %notification.alert.fingerprint,
                            reason = %notification.alert.reason,
                            "notification rejected by the sink; dropped without retrying"
                        );
                    }
                    backoff = None;
                    failed_attempts = 0;
                }
                Verdict::Retry(retry_after, error) => {
                    failed_attempts = failed_attempts.saturating_add(1);
                    for _ in &batch {
                        self.observer
                            .notification(&name, NotificationOutcome::Failed);
                    }
                    let backoff = backoff.get_or_insert_with(|| self.new_backoff());
                    let backoff_delay = backoff.next().unwrap_or(self.retry.max_backoff);
                    // Waiting longer than the max age would only end in a drop.
                    let delay = retry_after.map_or(backoff_delay, |retry_after| {
                        retry_after.min(self.sink.max_age)
                    });
                    tracing::warn!(
                        sink = %name,
                        error = %error,
                        attempt = failed_attempts,
                        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        queued = self.outbox.read(|outbox| outbox.len(&name)),
                        "notification delivery failed; will retry"
                    );
                    if !self.pause(delay).await {
                        return;
                    }
                }
            }
        }
    }

    fn new_backoff(&self) -> ExponentialBackoff {
        ExponentialBuilder::new()
            .with_min_delay(self.retry.initial_backoff)
            .with_max_delay(self.retry.max_backoff)
            .with_jitter()
            .without_max_times()
            .build()
    }

    fn log_delivered(&self, notification: &Notification, failed_attempts: u32) {
        let alert = &notification.alert;
        // Alertmanager is re-posted every cycle: at info that would be a line per alert per cycle.
        if self.sink.kind == SinkKind::Alertmanager {
            tracing::debug!(
                sink = %self.sink.name,
                fingerprint = %alert.fingerprint,
                kind = notification.kind.status(),
                "alert posted to Alertmanager"
            );
        } else {
            tracing::info!(
                sink = %self.sink.name,
                fingerprint = %alert.fingerprint,
                reason = %alert.reason,
                zone = %alert.zone,
                object = %alert.object,
                kind = ?notification.kind,
                failed_attempts,
                "notification sent"
            );
        }
    }

    /// Drops (and counts) notifications of the batch older than the sink's max age; `true`
    /// if any was.
    fn drop_expired(&self, batch: &[Notification]) -> bool {
        let now = Utc::now();
        let max_age =
            chrono::TimeDelta::from_std(self.sink.max_age).unwrap_or(chrono::TimeDelta::MAX);
        let expired: Vec<&Notification> = batch
            .iter()
            .filter(|notification| now - notification.created_at > max_age)
            .collect();
        if expired.is_empty() {
            return false;
        }
        let ids: Vec<u64> = expired.iter().map(|notification| notification.id).collect();
        self.outbox
            .update(|outbox| outbox.remove(&self.sink.name, &ids));
        for notification in expired {
            self.observer
                .notification(&self.sink.name, NotificationOutcome::Dropped);
            tracing::error!(
                sink = %self.sink.name,
                fingerprint = %notification.alert.fingerprint,
                reason = %notification.alert.reason,
                queued_at = %notification.created_at,
                max_age = %humantime::format_duration(self.sink.max_age),
                "notification not delivered within the sink's max_age; dropped"
            );
        }
        true
    }

    /// One HTTP request for the batch.
    async fn attempt(&self, batch: &[Notification]) -> Verdict {
        let (url, body) = match self.request(batch) {
            Ok(request) => request,
            Err(error) => return Verdict::GiveUp(error),
        };
        let mut request = self
            .http
            .post(url)
            .timeout(self.sink.timeout)
            .header(CONTENT_TYPE, "application/json");
        if self.sink.kind == SinkKind::Webhook {
            if let Some(secret) = &self.sink.hmac_secret {
                match webhook::signature(secret.value.expose().as_bytes(), &body) {
                    Ok(signature) => {
                        request = request.header(webhook::SIGNATURE_HEADER, signature);
                    }
                    Err(error) => return Verdict::GiveUp(DeliveryError::Signature(error)),
                }
            }
        }
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(error) => return Verdict::Retry(None, DeliveryError::request(error)),
        };
        classify(response.status(), response.headers())
    }

    /// The URL and body for a batch.
    fn request(&self, batch: &[Notification]) -> Result<(url::Url, Vec<u8>), DeliveryError> {
        let root = self.sink.url.value.expose();
        let (url, body) = match self.sink.kind {
            SinkKind::Slack => (root.clone(), slack::payload(&batch[0])),
            SinkKind::Webhook => (root.clone(), webhook::payload(&batch[0], &self.sink.name)),
            SinkKind::Alertmanager => {
                (alertmanager::alerts_url(root), alertmanager::payload(batch))
            }
        };
        let body = serde_json::to_vec(&body).map_err(DeliveryError::Encode)?;
        Ok((url, body))
    }
}

/// 2xx delivered; 429 and 5xx retried; anything else (other 4xx, a redirect) given up.
fn classify(status: StatusCode, headers: &HeaderMap) -> Verdict {
    if status.is_success() {
        return Verdict::Delivered;
    }
    let error = DeliveryError::Status {
        status: status.as_u16(),
        retry_after: retry_after(headers),
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        Verdict::Retry(retry_after(headers), error)
    } else if status.is_server_error() {
        Verdict::Retry(None, error)
    } else {
        Verdict::GiveUp(error)
    }
}

/// Whether a notification of `kind` goes to a sink of `kind`: Slack and webhooks hear of a
/// resolve only with `send_resolved`; Alertmanager always does (its own `send_resolved`
/// decides what its receivers hear), else it would keep the alert until `endsAt`.
pub fn wants(sink: SinkKind, kind: TransitionKind, send_resolved: bool) -> bool {
    match (sink, kind) {
        (SinkKind::Alertmanager, TransitionKind::Resolved) => true,
        // Alertmanager gets every firing alert every cycle instead of transitions.
        (SinkKind::Alertmanager, _) => false,
        (_, TransitionKind::Resolved) => send_resolved,
        (_, TransitionKind::Firing | TransitionKind::Repeat) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    fn headers(retry_after: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn statuses_are_classified_as_the_spec_says() {
        assert!(matches!(
            classify(StatusCode::OK, &headers(None)),
            Verdict::Delivered
        ));
        assert!(matches!(
            classify(StatusCode::NO_CONTENT, &headers(None)),
            Verdict::Delivered
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, &headers(Some("7"))),
            Verdict::Retry(Some(delay), _) if delay == Duration::from_secs(7)
        ));
        assert!(matches!(
            classify(
                StatusCode::TOO_MANY_REQUESTS,
                &headers(Some("Wed, 21 Oct 2015 07:28:00 GMT"))
            ),
            Verdict::Retry(None, _)
        ));
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, &headers(None)),
            Verdict::Retry(None, _)
        ));
        for rejected in [
            StatusCode::BAD_REQUEST,
            StatusCode::NOT_FOUND,
            StatusCode::GONE,
            StatusCode::FOUND,
        ] {
            assert!(
                matches!(classify(rejected, &headers(None)), Verdict::GiveUp(_)),
                "{rejected}"
            );
        }
    }

    #[test]
    fn resolved_goes_to_chat_sinks_only_with_send_resolved_and_always_to_alertmanager() {
        assert!(wants(SinkKind::Slack, TransitionKind::Firing, false));
        assert!(wants(SinkKind::Webhook, TransitionKind::Repeat, false));
        assert!(!wants(SinkKind::Slack, TransitionKind::Resolved, false));
        assert!(wants(SinkKind::Webhook, TransitionKind::Resolved, true));
        assert!(wants(
            SinkKind::Alertmanager,
            TransitionKind::Resolved,
            false
        ));
        assert!(!wants(SinkKind::Alertmanager, TransitionKind::Firing, true));
    }

    #[test]
    fn status_errors_name_only_the_status() {
        let error = DeliveryError::Status {
            status: 503,
            retry_after: None,
        };
        assert_eq!(error.to_string(), "the sink answered HTTP 503");
    }
}
