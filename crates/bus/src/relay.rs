//! The outbox relay: moves committed events from the outbox to the exchange.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use deadpool_postgres::Pool;
use futures::future::join_all;
use lapin::{
    BasicProperties, Channel, options::BasicPublishOptions, options::ConfirmSelectOptions,
};
use tokio::{sync::Notify, task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    BusConfig, BusError,
    amqp::{self, Backoff},
};

/// Counters for metrics; monotonic.
#[derive(Debug, Default)]
pub struct RelayStats {
    published: AtomicU64,
    failures: AtomicU64,
}

impl RelayStats {
    /// Events the broker confirmed (and so removed from the outbox).
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Failed attempts: broker or database unreachable, nacks, lost confirms.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a service's stores commit through once they have queued events: the commit
/// wakes the relay of this process at once. (A PostgreSQL NOTIFY would reach other
/// processes too, but it serialises every notifying commit, WAL flush included, on one
/// database-wide lock.) A commit made without it is relayed at the next poll.
#[derive(Clone, Debug, Default)]
pub struct Outbox {
    wake: Arc<Notify>,
}

impl Outbox {
    /// Commits `tx`, then wakes the relay.
    pub async fn commit(
        &self,
        tx: deadpool_postgres::Transaction<'_>,
    ) -> Result<(), tokio_postgres::Error> {
        tx.commit().await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Wakes the relay after events were queued outside a transaction (one autocommitted
    /// statement: no BEGIN and COMMIT round trips).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// A running relay: its task, its counters and the handle that wakes it.
#[derive(Debug)]
pub struct RelayHandle {
    pub task: JoinHandle<()>,
    pub stats: Arc<RelayStats>,
    pub outbox: Outbox,
}

impl RelayHandle {
    /// Resolves when the relay has stopped.
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// What a service does at start to publish: creates the bus tables in the pool's schema
/// and starts the relay of its outbox.
pub async fn start_outbox(
    pool: &Pool,
    config: BusConfig,
    shutdown: CancellationToken,
) -> Result<RelayHandle, BusError> {
    let mut client = pool.get().await?;
    crate::store::migrate(&mut client).await?;
    drop(client);
    Ok(spawn_relay(
        pool.clone(),
        Outbox::default(),
        config,
        shutdown,
    ))
}

/// Starts the relay of the outbox found through `pool` (its `search_path` schema). It
/// runs when `outbox` commits, and every `relay_interval_ms` whatever happens.
pub fn spawn_relay(
    pool: Pool,
    outbox: Outbox,
    config: BusConfig,
    shutdown: CancellationToken,
) -> RelayHandle {
    let relay = Relay::new(pool, outbox.clone(), config);
    let stats = relay.stats();
    RelayHandle {
        task: tokio::spawn(relay.run(shutdown)),
        stats,
        outbox,
    }
}

/// A relay that took fewer rows than this last time lingers when woken (see
/// `BusConfig::relay_linger_ms`).
const LINGER_BELOW: usize = 16;

/// Publishes outbox rows in `seq` order, persistent and confirmed, and deletes each row
/// only once the broker has confirmed it. When the broker is away rows wait; a row is
/// published twice only if its confirm was lost.
///
/// `seq` is taken at insert: events of one transaction, or of transactions that follow
/// one another, keep their order; two transactions running at once may commit, and so be
/// published, out of `seq` order.
pub struct Relay {
    pool: Pool,
    outbox: Outbox,
    config: BusConfig,
    stats: Arc<RelayStats>,
}

impl Relay {
    pub fn new(pool: Pool, outbox: Outbox, config: BusConfig) -> Self {
        Self {
            pool,
            outbox,
            config,
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> Arc<RelayStats> {
        Arc::clone(&self.stats)
    }

    /// Runs until `shutdown`; a batch in flight is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(self.config.max_backoff());
        let wake = Arc::clone(&self.outbox.wake);
        loop {
            match self.session(&wake, &shutdown, &mut backoff).await {
                Ok(()) => break,
                Err(error) => {
                    self.stats.failed();
                    tracing::warn!(
                        %error,
                        broker = %self.config.redacted_url(),
                        "outbox relay interrupted; events wait in the outbox"
                    );
                    if !backoff.wait(&shutdown).await {
                        break;
                    }
                }
            }
        }
    }

    async fn session(
        &self,
        wake: &Notify,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), BusError> {
        let connection = amqp::connect(&self.config, "relais-outbox-relay").await?;
        let result = self
            .publish_loop(&connection, wake, shutdown, backoff)
            .await;
        amqp::close(connection).await;
        result
    }

    async fn publish_loop(
        &self,
        connection: &lapin::Connection,
        wake: &Notify,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), BusError> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        amqp::declare_exchange(&channel, &self.config).await?;
        tracing::info!(exchange = %self.config.exchange, "outbox relay connected");
        let batch = usize::try_from(self.config.relay_batch).unwrap_or(usize::MAX);
        loop {
            // A full batch means more rows may be waiting.
            let mut relayed;
            loop {
                relayed = self.relay_batch(&channel).await?;
                backoff.reset();
                if relayed < batch || shutdown.is_cancelled() {
                    break;
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = wake.notified() => {
                    // Commits trickling in go together; under load batches fill on their own.
                    if relayed < LINGER_BELOW {
                        tokio::select! {
                            () = shutdown.cancelled() => return Ok(()),
                            () = tokio::time::sleep(self.config.relay_linger()) => {}
                        }
                    }
                }
                () = tokio::time::sleep(self.config.relay_interval()) => {}
            }
        }
    }

    /// Publishes one batch in one transaction: its rows are taken (deleted, and locked so
    /// a second relay of the same schema skips them) as they are read, and the deletion
    /// commits only once the broker confirmed every one; otherwise it is rolled back and
    /// the whole batch stays for the next attempt (the confirmed ones are then published
    /// again: consumers are idempotent on the event id).
    async fn relay_batch(&self, channel: &Channel) -> Result<usize, BusError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let take = tx
            .prepare_cached(
                "DELETE FROM outbox WHERE seq IN \
                 (SELECT seq FROM outbox ORDER BY seq LIMIT $1 FOR UPDATE) \
                 RETURNING seq, id, kind, body::text",
            )
            .await?;
        let mut rows = tx
            .query(&take, &[&i64::from(self.config.relay_batch)])
            .await?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        rows.sort_by_key(|row| row.try_get::<_, i64>(0).unwrap_or(i64::MAX));

        let mut decoded = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: Uuid = row.try_get(1)?;
            let kind: &str = row.try_get(2)?;
            let body: &str = row.try_get(3)?;
            decoded.push((id, kind, body));
        }
        let messages = messages(&decoded);

        let deadline = Instant::now() + self.config.confirm_timeout();
        let mut pending = Vec::with_capacity(messages.len());
        let mut interrupted = None;
        for message in &messages {
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(message.id.to_string().into());
            let publish = channel.basic_publish(
                &self.config.exchange,
                &message.routing_key,
                BasicPublishOptions::default(),
                &message.body,
                properties,
            );
            match tokio::time::timeout_at(deadline, publish).await {
                Ok(Ok(confirm)) => pending.push(confirm),
                Ok(Err(error)) => {
                    interrupted = Some(BusError::from(error));
                    break;
                }
                Err(_) => {
                    interrupted = Some(BusError::Timeout(self.config.confirm_timeout()));
                    break;
                }
            }
        }

        // Confirms are awaited together: one broker round trip per batch, not per event.
        let outcomes = join_all(
            pending
                .into_iter()
                .map(|confirm| tokio::time::timeout_at(deadline, confirm)),
        )
        .await;
        let (mut acked, mut nacked, mut lost) = (0, 0, 0);
        for outcome in outcomes {
            match outcome {
                Ok(Ok(confirmation)) if confirmation.is_ack() => acked += 1,
                Ok(Ok(_)) => nacked += 1,
                Ok(Err(_)) | Err(_) => lost += 1,
            }
        }
        if interrupted.is_none() && acked == messages.len() {
            tx.commit().await?;
            self.stats
                .published
                .fetch_add(rows.len() as u64, Ordering::Relaxed);
        } else {
            tx.rollback().await?;
        }

        if let Some(error) = interrupted {
            return Err(error);
        }
        if lost > 0 {
            return Err(BusError::ConfirmsLost(lost));
        }
        if nacked > 0 {
            return Err(BusError::Nacked(nacked));
        }
        Ok(rows.len())
    }
}

/// One AMQP message of a relay batch.
#[derive(Debug, PartialEq)]
struct Message {
    id: Uuid,
    routing_key: String,
    body: Vec<u8>,
}

/// The messages of a batch of `(id, kind, body)` rows in queue order: each event alone
/// under its kind, except the events of a batched family when there are several, which
/// go together, in their order, as one message (at the place of the first of them).
fn messages(rows: &[(Uuid, &str, &str)]) -> Vec<Message> {
    let keys: Vec<Option<String>> = rows
        .iter()
        .map(|(_, kind, _)| crate::batch_routing_key(kind))
        .collect();
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for key in keys.iter().flatten() {
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key, 1)),
        }
    }
    let mut out: Vec<Message> = Vec::with_capacity(rows.len());
    // Each family's batch message: its key and its index in `out`.
    let mut batches: Vec<(&str, usize)> = Vec::new();
    for ((id, kind, body), key) in rows.iter().zip(&keys) {
        let key = key
            .as_deref()
            .filter(|key| counts.iter().any(|(k, n)| k == key && *n > 1));
        let Some(key) = key else {
            out.push(Message {
                id: *id,
                routing_key: (*kind).to_owned(),
                body: body.as_bytes().to_vec(),
            });
            continue;
        };
        match batches.iter().find(|(k, _)| *k == key) {
            Some((_, at)) => {
                let batch = &mut out[*at].body;
                batch.push(b',');
                batch.extend_from_slice(body.as_bytes());
            }
            None => {
                batches.push((key, out.len()));
                let mut batch = vec![b'['];
                batch.extend_from_slice(body.as_bytes());
                out.push(Message {
                    id: *id,
                    routing_key: key.to_owned(),
                    body: batch,
                });
            }
        }
    }
    for (_, at) in batches {
        out[at].body.push(b']');
    }
    out
}

/// What [`recorder`] returns: records a payload durably, or says why it could not.
pub type Recorder<T> = Arc<
    dyn Fn(T) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// Records each payload it is given as an event `kind` from `source`, queued in the
/// service's outbox (committed when it returns) for the relay to publish.
pub fn recorder<T: serde::Serialize + Send + 'static>(
    pool: deadpool_postgres::Pool,
    outbox: Outbox,
    kind: &'static str,
    source: &'static str,
) -> Recorder<T> {
    Arc::new(move |payload: T| {
        let (pool, outbox) = (pool.clone(), outbox.clone());
        Box::pin(async move {
            let payload = serde_json::to_value(&payload).map_err(|e| e.to_string())?;
            let event = crate::Event::new(kind, source, payload);
            let client = pool.get().await.map_err(|e| e.to_string())?;
            crate::enqueue(&client, &event)
                .await
                .map_err(|e| e.to_string())?;
            outbox.wake();
            Ok(())
        })
    })
}
