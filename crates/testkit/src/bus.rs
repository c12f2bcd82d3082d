use std::{
    net::{SocketAddr, ToSocketAddrs},
    sync::Mutex,
};

use lapin::{
    Connection, ConnectionProperties,
    options::{ExchangeDeleteOptions, QueueDeleteOptions},
};
use relais_bus::BusConfig;
use uuid::Uuid;

/// An exchange of the test's own on the shared broker, and the queues named after it.
///
/// The broker URL comes from `RELAIS_TEST_AMQP` (default: `BusConfig`'s). Everything is
/// deleted at [`TestBus::cleanup`], or when dropped.
pub struct TestBus {
    url: String,
    exchange: String,
    queues: Mutex<Vec<String>>,
    cleaned: bool,
}

impl Default for TestBus {
    fn default() -> Self {
        Self::new()
    }
}

impl TestBus {
    pub fn new() -> Self {
        Self {
            url: std::env::var("RELAIS_TEST_AMQP").unwrap_or_else(|_| BusConfig::default().url),
            exchange: format!("relais.test.{}", Uuid::new_v4().simple()),
            queues: Mutex::new(Vec::new()),
            cleaned: false,
        }
    }

    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A `BusConfig` on this exchange, with pauses shortened so tests do not wait.
    pub fn config(&self) -> BusConfig {
        BusConfig {
            url: self.url.clone(),
            exchange: self.exchange.clone(),
            relay_interval_ms: 200,
            confirm_timeout_ms: 3_000,
            retry_delay_ms: 100,
            reconnect_max_backoff_ms: 500,
            ..BusConfig::default()
        }
    }

    /// The same, reaching the broker through `proxy` (see [`crate::TcpProxy`]).
    pub fn config_via(&self, proxy: SocketAddr) -> BusConfig {
        let mut url = url::Url::parse(&self.url).expect("broker URL");
        url.set_ip_host(proxy.ip()).expect("broker URL has a host");
        url.set_port(Some(proxy.port()))
            .expect("broker URL has a host");
        BusConfig {
            url: url.to_string(),
            ..self.config()
        }
    }

    /// Where the broker listens, to put a proxy in front of it.
    pub fn broker_addr(&self) -> SocketAddr {
        let url = url::Url::parse(&self.url).expect("broker URL");
        let host = url.host_str().expect("broker URL has a host");
        (host, url.port().unwrap_or(5672))
            .to_socket_addrs()
            .expect("broker host resolves")
            .next()
            .expect("broker host has an address")
    }

    /// A queue name of this test (`<exchange>.<name>`), deleted at cleanup.
    pub fn queue(&self, name: &str) -> String {
        let queue = format!("{}.{name}", self.exchange);
        self.queues.lock().expect("queue list").push(queue.clone());
        queue
    }

    /// Deletes `queue` at cleanup too (one a service declared itself, named after ours).
    pub fn track(&self, queue: &str) {
        self.queues
            .lock()
            .expect("queue list")
            .push(queue.to_owned());
    }

    /// A fresh connection to the broker, for a test to publish or inspect directly.
    pub async fn connect(&self) -> Connection {
        connect(&self.url).await
    }

    /// Deletes the queues handed out and the exchange.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        let queues = std::mem::take(&mut *self.queues.lock().expect("queue list"));
        delete(&self.url, &self.exchange, &queues).await;
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let url = self.url.clone();
        let exchange = self.exchange.clone();
        let queues = match self.queues.lock() {
            Ok(mut queues) => std::mem::take(&mut *queues),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        // Drop cannot await, and may run inside a runtime: use a thread with its own.
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("test runtime");
            runtime.block_on(delete(&url, &exchange, &queues));
        })
        .join();
        if outcome.is_err() {
            eprintln!(
                "relais-testkit: could not delete test exchange {}",
                self.exchange
            );
        }
    }
}

async fn connect(url: &str) -> Connection {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    Connection::connect(url, properties)
        .await
        .unwrap_or_else(|e| panic!("cannot reach RabbitMQ ({e}); set RELAIS_TEST_AMQP"))
}

async fn delete(url: &str, exchange: &str, queues: &[String]) {
    let connection = connect(url).await;
    let channel = connection.create_channel().await.expect("channel");
    for queue in queues {
        channel
            .queue_delete(queue, QueueDeleteOptions::default())
            .await
            .unwrap_or_else(|e| panic!("cannot delete test queue {queue}: {e}"));
    }
    channel
        .exchange_delete(exchange, ExchangeDeleteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot delete test exchange {exchange}: {e}"));
    // Best effort: the deletions are done whatever the close says.
    let _ = connection.close(200, "test cleanup").await;
}

/// How long a test waits for an event before failing.
const EVENT_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

impl TestBus {
    /// A queue of the test's own, bound to `routing_key` on this exchange from now on:
    /// what the services publish, as an observer sees it.
    pub async fn listen(&self, routing_key: &str) -> Listener {
        use lapin::ExchangeKind;
        use lapin::options::{
            BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
        };
        use lapin::types::FieldTable;
        let connection = self.connect().await;
        let channel = connection.create_channel().await.unwrap();
        // The same declaration as the relay's, so whichever comes first, both agree.
        channel
            .exchange_declare(
                self.exchange(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let queue = self.queue(&format!("observer-{}", uuid::Uuid::new_v4().simple()));
        channel
            .queue_declare(
                &queue,
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                &queue,
                self.exchange(),
                routing_key,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let consumer = channel
            .basic_consume(
                &queue,
                "observer",
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        Listener {
            _connection: connection,
            consumer,
            pending: std::collections::VecDeque::new(),
        }
    }
}

/// Events seen by [`TestBus::listen`].
pub struct Listener {
    _connection: lapin::Connection,
    consumer: lapin::Consumer,
    /// The rest of a batch message already received.
    pending: std::collections::VecDeque<relais_bus::Event>,
}

impl Listener {
    /// The next message as the broker carries it: its routing key and body, or None if
    /// none comes within `wait`.
    pub async fn next_message(&mut self, wait: std::time::Duration) -> Option<(String, Vec<u8>)> {
        use futures::StreamExt;
        let delivery = tokio::time::timeout(wait, self.consumer.next())
            .await
            .ok()?
            .expect("the observer's consumer ended")
            .unwrap();
        Some((delivery.routing_key.to_string(), delivery.data))
    }

    /// The first event received that `wanted` accepts; panics if none comes in time.
    pub async fn wait_for(
        &mut self,
        what: &str,
        wanted: impl Fn(&relais_bus::Event) -> bool,
    ) -> relais_bus::Event {
        let deadline = tokio::time::Instant::now() + EVENT_WAIT;
        loop {
            if self.pending.is_empty() {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let (key, data) = self
                    .next_message(left)
                    .await
                    .unwrap_or_else(|| panic!("timed out waiting for {what}"));
                let events = relais_bus::Event::from_message(&data).unwrap();
                for event in &events {
                    let batch = relais_bus::batch_routing_key(&event.kind);
                    assert!(event.kind == key || batch.as_deref() == Some(key.as_str()));
                }
                self.pending.extend(events);
            }
            let Some(event) = self.pending.pop_front() else {
                continue;
            };
            if wanted(&event) {
                return event;
            }
        }
    }
}
