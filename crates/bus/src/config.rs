use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

use crate::BusError;

/// How a service reaches the bus. Every field has a default fit for the local stack.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// AMQP URL of the broker; may hold a password, so `Debug` hides it.
    pub url: String,
    /// The durable topic exchange every event goes through.
    pub exchange: String,
    /// Outbox rows the relay publishes per batch.
    pub relay_batch: u32,
    /// How often the relay looks at the outbox when no notification woke it.
    pub relay_interval_ms: u64,
    /// How long the relay waits for the broker's confirms of a batch.
    pub confirm_timeout_ms: u64,
    /// Deliveries a consumer may hold unacknowledged.
    pub prefetch: u16,
    /// Pause before a delivery whose handler failed goes back to the queue.
    pub retry_delay_ms: u64,
    /// Cap of the doubling pause between reconnection attempts.
    pub reconnect_max_backoff_ms: u64,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            exchange: "relais.events".to_owned(),
            relay_batch: 256,
            relay_interval_ms: 1_000,
            confirm_timeout_ms: 10_000,
            prefetch: 64,
            retry_delay_ms: 1_000,
            reconnect_max_backoff_ms: 30_000,
        }
    }
}

impl BusConfig {
    /// Checks what parsing cannot; does no I/O.
    pub fn validate(&self) -> Result<(), BusError> {
        let invalid = |field, reason: &str| {
            Err(BusError::Config {
                field,
                reason: reason.to_owned(),
            })
        };
        if let Err(reason) = self.url.parse::<lapin::uri::AMQPUri>() {
            return Err(BusError::Config {
                field: "url",
                reason: format!("is not an AMQP URL: {reason}"),
            });
        }
        if self.exchange.is_empty() {
            return invalid("exchange", "must not be empty");
        }
        if self.relay_batch == 0 {
            return invalid("relay_batch", "must be at least 1");
        }
        if self.relay_interval_ms == 0 {
            return invalid("relay_interval_ms", "must be at least 1");
        }
        if self.confirm_timeout_ms == 0 {
            return invalid("confirm_timeout_ms", "must be at least 1");
        }
        if self.prefetch == 0 {
            return invalid("prefetch", "must be at least 1 (0 would mean unlimited)");
        }
        if self.reconnect_max_backoff_ms == 0 {
            return invalid("reconnect_max_backoff_ms", "must be at least 1");
        }
        Ok(())
    }

    pub(crate) fn relay_interval(&self) -> Duration {
        Duration::from_millis(self.relay_interval_ms)
    }

    pub(crate) fn confirm_timeout(&self) -> Duration {
        Duration::from_millis(self.confirm_timeout_ms)
    }

    pub(crate) fn retry_delay(&self) -> Duration {
        Duration::from_millis(self.retry_delay_ms)
    }

    pub(crate) fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.reconnect_max_backoff_ms)
    }

    /// The URL with its password masked, fit for logs.
    pub fn redacted_url(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(mut url) => {
                if url.password().is_some() {
                    // Cannot fail: a URL with a password has a host.
                    let _ = url.set_password(Some("***"));
                }
                url.to_string()
            }
            Err(_) => "<unparsable url>".to_owned(),
        }
    }
}

impl fmt::Debug for BusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusConfig")
            .field("url", &self.redacted_url())
            .field("exchange", &self.exchange)
            .field("relay_batch", &self.relay_batch)
            .field("relay_interval_ms", &self.relay_interval_ms)
            .field("confirm_timeout_ms", &self.confirm_timeout_ms)
            .field("prefetch", &self.prefetch)
            .field("retry_delay_ms", &self.retry_delay_ms)
            .field("reconnect_max_backoff_ms", &self.reconnect_max_backoff_ms)
            .finish()
    }
}
