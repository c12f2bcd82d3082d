use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::uri::AMQPScheme;

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
    /// How long a woken relay whose last batch was small waits for more commits before it
    /// takes the next: events
    /// are durable in the outbox already, so this delays only their delivery, and a
    /// sign-in's records then travel as one message and one transaction of the proof
    /// store instead of one each. 0: at once.
    pub relay_linger_ms: u64,
    /// How long the relay waits for the broker's confirms of a batch.
    pub confirm_timeout_ms: u64,
    /// Deliveries a consumer may hold unacknowledged.
    pub prefetch: u16,
    /// Pause before a delivery whose handler failed goes back to the queue.
    pub retry_delay_ms: u64,
    /// Cap of the doubling pause between reconnection attempts.
    pub reconnect_max_backoff_ms: u64,
    /// With `amqps://`: PEM file of the CA of the broker's certificate, trusted besides
    /// the system's roots.
    pub ca_file: String,
    /// With `amqps://`: the client certificate and key as a PKCS#12 file (what the
    /// broker's `ssl_options.verify = verify_peer` asks for), empty for none.
    pub client_identity_file: String,
    /// The password of `client_identity_file`; `Debug` hides it.
    pub client_identity_password: String,
    /// Plain `amqp://` to a broker that is not on this machine (e.g. through a local TLS
    /// sidecar): refused unless this is set.
    pub insecure_plaintext: bool,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            exchange: "relais.events".to_owned(),
            relay_batch: 256,
            relay_interval_ms: 1_000,
            relay_linger_ms: 20,
            confirm_timeout_ms: 10_000,
            prefetch: 64,
            retry_delay_ms: 1_000,
            reconnect_max_backoff_ms: 30_000,
            ca_file: String::new(),
            client_identity_file: String::new(),
            client_identity_password: String::new(),
            insecure_plaintext: false,
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
        let uri = match self.url.parse::<lapin::uri::AMQPUri>() {
            Ok(uri) => uri,
            Err(reason) => {
                return Err(BusError::Config {
                    field: "url",
                    reason: format!("is not an AMQP URL: {reason}"),
                });
            }
        };
        if uri.scheme == AMQPScheme::AMQP {
            let host = uri
                .authority
                .host
                .trim_start_matches('[')
                .trim_end_matches(']');
            let local = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !local && !self.insecure_plaintext {
                return invalid(
                    "url",
                    "is plain amqp:// to a broker that is not on this machine: events carry \
                     identity data and the broker's password would cross the network in \
                     clear; use amqps:// (with bus.ca_file), or set bus.insecure_plaintext \
                     if something else encrypts the link",
                );
            }
            for (field, value) in [
                ("ca_file", &self.ca_file),
                ("client_identity_file", &self.client_identity_file),
            ] {
                if !value.trim().is_empty() {
                    return invalid(field, "is used with an amqps:// URL only");
                }
            }
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
        if self.relay_linger_ms >= self.relay_interval_ms {
            return invalid("relay_linger_ms", "must be shorter than relay_interval_ms");
        }
        if self.prefetch == 0 {
            return invalid("prefetch", "must be at least 1 (0 would mean unlimited)");
        }
        if self.reconnect_max_backoff_ms == 0 {
            return invalid("reconnect_max_backoff_ms", "must be at least 1");
        }
        Ok(())
    }

    /// Reads the TLS files of an `amqps://` link; what `validate` cannot check without I/O.
    pub fn check_files(&self) -> Result<(), BusError> {
        self.tls().map(|_| ())
    }

    /// The CA and client identity of the broker link, read now (so renewed files are
    /// taken at the next connection).
    pub(crate) fn tls(&self) -> Result<OwnedTLSConfig, BusError> {
        let read = |field: &'static str, file: &str| {
            std::fs::read(file).map_err(|e| BusError::Config {
                field,
                reason: format!("cannot be read ({file}: {e})"),
            })
        };
        let cert_chain = match self.ca_file.trim() {
            "" => None,
            file => {
                let pem =
                    String::from_utf8(read("ca_file", file)?).map_err(|_| BusError::Config {
                        field: "ca_file",
                        reason: format!("{file} is not PEM text"),
                    })?;
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(BusError::Config {
                        field: "ca_file",
                        reason: format!("{file} holds no PEM certificate"),
                    });
                }
                Some(pem)
            }
        };
        let identity = match self.client_identity_file.trim() {
            "" => None,
            file => Some(OwnedIdentity {
                der: read("client_identity_file", file)?,
                password: self.client_identity_password.clone(),
            }),
        };
        Ok(OwnedTLSConfig {
            identity,
            cert_chain,
        })
    }

    pub(crate) fn relay_interval(&self) -> Duration {
        Duration::from_millis(self.relay_interval_ms)
    }

    pub(crate) fn relay_linger(&self) -> Duration {
        Duration::from_millis(self.relay_linger_ms)
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
            .field("relay_linger_ms", &self.relay_linger_ms)
            .field("confirm_timeout_ms", &self.confirm_timeout_ms)
            .field("prefetch", &self.prefetch)
            .field("retry_delay_ms", &self.retry_delay_ms)
            .field("reconnect_max_backoff_ms", &self.reconnect_max_backoff_ms)
            .field("ca_file", &self.ca_file)
            .field("client_identity_file", &self.client_identity_file)
            .field("client_identity_password", &"[redacted]")
            .field("insecure_plaintext", &self.insecure_plaintext)
            .finish()
    }
}
