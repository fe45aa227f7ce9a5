//! The end of a session, whatever ended it (logout, back-channel, front-channel, expiry,
//! eviction, an operator): one log line without secrets, one count by reason, and the
//! logged-out webhooks (the `on_logged_out` hook of ../shared/seeds/synapse-password-auth-providers.txt).
//!
//! Webhooks never block a logout: events go to a bounded queue, a background worker POSTs
//! `{"user", "sid", "session_id_hash", "reason"}` to each configured URL, retrying a bounded
//! number of times with backoff; a full queue drops the event with a log line and a count.

use super::{EndReason, Session, SessionEndListener};
use crate::metrics::METRICS;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Events waiting for delivery at most; beyond, new ones are dropped (and counted).
const QUEUE: usize = 10_000;
/// Deliveries in flight at once.
const CONCURRENT_DELIVERIES: usize = 16;

/// One configured logged-out webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    /// What logs name the receiver by: scheme, host and port. The path and query may carry a
    /// credential (as chat webhooks' URLs do), so they stay out of the logs.
    pub origin: String,
    pub timeout: Duration,
    /// Attempts after the first, at most [`MAX_RETRIES`].
    pub retries: u32,
}

/// The most retries a webhook may have: with the backoff capped at [`MAX_BACKOFF`], a dead
/// receiver holds one of the delivery slots for about six minutes at most.
pub const MAX_RETRIES: u32 = 10;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The JSON body of a webhook call.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedOut {
    pub user: String,
    pub sid: Option<String>,
    /// Hex SHA-256 of the session id: correlates with logs, useless as a cookie.
    pub session_id_hash: String,
    pub reason: &'static str,
}

/// Reports ended sessions.
pub struct SessionEvents {
    queue: Option<mpsc::Sender<LoggedOut>>,
    /// The receiving end, until the worker takes it.
    receiver: Mutex<Option<mpsc::Receiver<LoggedOut>>>,
    webhooks: Vec<Webhook>,
}

impl SessionEvents {
    pub fn new(webhooks: Vec<Webhook>) -> Self {
        let (queue, receiver) = if webhooks.is_empty() {
            (None, None)
        } else {
            let (tx, rx) = mpsc::channel(QUEUE);
            (Some(tx), Some(rx))
        };
        Self {
            queue,
            receiver: Mutex::new(receiver),
            webhooks,
        }
    }
}

impl SessionEndListener for SessionEvents {
    fn session_ended(&self, session: &Session, reason: EndReason) {
        METRICS
            .sessions_ended
            .with_label_values(&[reason.as_str()])
            .inc();
        tracing::info!(
            session = %session.key.short(),
            user = %session.identity.subject,
            reason = reason.as_str(),
            "session ended"
        );
        let Some(queue) = &self.queue else { return };
        let event = LoggedOut {
            user: session.identity.subject.to_string(),
            sid: session.identity.sid.as_deref().map(str::to_string),
            session_id_hash: session.key.0.iter().map(|b| format!("{b:02x}")).collect(),
            reason: reason.as_str(),
        };
        if queue.try_send(event).is_err() {
            METRICS
                .logout_webhook_deliveries
                .with_label_values(&["dropped"])
                .inc();
            tracing::warn!("logged-out webhook queue full; event dropped");
        }
    }
}

/// Delivers queued events to the webhooks.
pub struct WebhookWorker {
    pub events: Arc<SessionEvents>,
    pub http: reqwest::Client,
}

#[async_trait]
impl BackgroundService for WebhookWorker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut rx) = self.events.receiver.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_DELIVERIES));
        loop {
            let event = tokio::select! {
                _ = shutdown.changed() => return,
                e = rx.recv() => match e { Some(e) => e, None => return },
            };
            for hook in &self.events.webhooks {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (http, hook, event) = (self.http.clone(), hook.clone(), event.clone());
                tokio::spawn(async move {
                    deliver(&http, &hook, &event).await;
                    drop(permit);
                });
            }
        }
    }
}

/// POST one event, retrying with backoff (0.5 s, 1 s, 2 s, ..., at most a minute).
async fn deliver(http: &reqwest::Client, hook: &Webhook, event: &LoggedOut) {
    let mut backoff = Duration::from_millis(500);
    for attempt in 0..=hook.retries {
        let result = http
            .post(&hook.url)
            .timeout(hook.timeout)
            .json(event)
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => {
                METRICS
                    .logout_webhook_deliveries
                    .with_label_values(&["ok"])
                    .inc();
                return;
            }
            Ok(r) => {
                tracing::warn!(webhook = %hook.origin, status = r.status().as_u16(), attempt, "logged-out webhook refused")
            }
            Err(e) => {
                tracing::warn!(webhook = %hook.origin, error = %e.without_url(), attempt, "logged-out webhook failed")
            }
        }
        if attempt < hook.retries {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
    METRICS
        .logout_webhook_deliveries
        .with_label_values(&["failed"])
        .inc();
}

/// Lets the store notice expired sessions every few seconds, so their end is reported (and
/// their webhooks called) without waiting for traffic to touch them.
pub struct ExpirySweeper {
    pub store: Arc<dyn super::SessionStore>,
    pub every: Duration,
}

#[async_trait]
impl BackgroundService for ExpirySweeper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(self.every) => self.store.run_maintenance(),
            }
        }
    }
}
