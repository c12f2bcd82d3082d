//! What the relay and the consumer share: connecting, the exchange, backing off.

use std::time::Duration;

use lapin::{
    Connection, ConnectionProperties, ExchangeKind, options::ExchangeDeclareOptions,
    types::FieldTable,
};
use tokio_util::sync::CancellationToken;

use crate::{BusConfig, BusError};

/// A broker that has not finished the handshake by then is treated as away.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

pub(crate) async fn connect(config: &BusConfig, name: &str) -> Result<Connection, BusError> {
    let properties = ConnectionProperties::default()
        .with_connection_name(name.into())
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    // Empty for amqp://; for amqps:// the CA and client identity, read at each connection.
    let tls = config.tls()?;
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connect_with_config(&config.url, properties, tls),
    )
    .await
    .map_err(|_| BusError::Timeout(CONNECT_TIMEOUT))?
    .map_err(BusError::from)
}

pub(crate) async fn declare_exchange(
    channel: &lapin::Channel,
    config: &BusConfig,
) -> Result<(), BusError> {
    channel
        .exchange_declare(
            &config.exchange,
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Closes a connection we give up on, so its I/O loop ends; a dead one may not answer.
pub(crate) async fn close(connection: Connection) {
    let closing = connection.close(200, "relais bus closing");
    if let Ok(Err(error)) = tokio::time::timeout(Duration::from_secs(2), closing).await {
        tracing::debug!(%error, "closing a broker connection that was already gone");
    }
}

/// Doubling pause between attempts, capped.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(max: Duration) -> Self {
        Self {
            next: FIRST_BACKOFF.min(max),
            max,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.next = FIRST_BACKOFF.min(self.max);
    }

    /// Sleeps the current pause and doubles it; false if shutdown came first.
    pub(crate) async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = tokio::time::sleep(pause) => true,
        }
    }
}
