//! The consumer: a durable queue bound to the exchange, each event handled once.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use async_trait::async_trait;
use deadpool_postgres::{Pool, Transaction};
use futures::{FutureExt, StreamExt};
use lapin::{
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
        BasicRejectOptions, QueueBindOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable},
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    BusConfig, BusError, Event,
    amqp::{self, Backoff},
};

/// Failed attempts so far, as the delay queues count them.
fn attempts_of(delivery: &Delivery) -> u32 {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ATTEMPT_HEADER))
        .and_then(|v| match v {
            AMQPValue::LongUInt(n) => Some(*n),
            AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
            _ => None,
        })
        .unwrap_or(0)
}

/// What a handler may fail with: any error; the event is retried later.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// What a service does with an event. It runs inside the transaction that records the
/// event as processed: write through `tx` and both commit together, or neither does.
#[async_trait]
pub trait EventHandler: Send + Sync {
    async fn handle(&self, tx: &Transaction<'_>, event: &Event) -> Result<(), HandlerError>;

    /// Several events, in delivery order, in one transaction. Override it when a batch
    /// costs less than its events one by one; if it fails, each event is retried alone.
    async fn handle_batch(
        &self,
        tx: &Transaction<'_>,
        events: &[&Event],
    ) -> Result<(), HandlerError> {
        for event in events {
            self.handle(tx, event).await?;
        }
        Ok(())
    }

    /// True when the handler's own store keeps each event once under a unique event id,
    /// which it checks in the transaction (a log of every event): the consumer then claims
    /// nothing in the inbox, whose row would be a second copy of that id, and hands the
    /// events to [`handle_new`](Self::handle_new). Not for a retrying consumer's handler
    /// (an event given up is claimed in the inbox).
    fn deduplicates(&self) -> bool {
        false
    }

    /// For a handler that [`deduplicates`](Self::deduplicates): handles those of `events`
    /// (in delivery order; one may come twice) that its store does not hold yet, each
    /// once, and returns how many it handled.
    async fn handle_new(
        &self,
        tx: &Transaction<'_>,
        events: &[&Event],
    ) -> Result<usize, HandlerError> {
        self.handle_batch(tx, events).await?;
        Ok(events.len())
    }

    /// False when handling acts outside the transaction (sending mail): a failed batch
    /// retried event by event would act twice, so such a handler gets one event at a time.
    fn batches(&self) -> bool {
        true
    }

    /// Called once the transaction of handled events has committed: a handler that queued
    /// events of its own wakes its service's relay here.
    fn committed(&self) {}

    /// Called when an event failed every attempt of a retry schedule
    /// ([`spawn_retrying_consumer`]), in a transaction that marks it handled: record that
    /// it was given up here. If this fails too, the event goes back to the queue.
    async fn abandoned(
        &self,
        _tx: &Transaction<'_>,
        _event: &Event,
        _attempts: u32,
        _error: &str,
    ) -> Result<(), HandlerError> {
        Ok(())
    }

    /// Called each time the consumer is bound and about to consume, after a reconnection
    /// too: a per-process queue ([`spawn_broadcast_consumer`]) missed whatever was
    /// published while it was away, so what it keeps in step (a cache) starts afresh here.
    async fn connected(&self) {}
}

/// Counters for metrics; monotonic.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    /// Set once the queue has been declared and bound: from then on no event is missed.
    bound: std::sync::atomic::AtomicBool,
    bound_notify: tokio::sync::Notify,
    handled: AtomicU64,
    duplicates: AtomicU64,
    malformed: AtomicU64,
    failures: AtomicU64,
    retries: AtomicU64,
    abandoned: AtomicU64,
}

impl ConsumerStats {
    /// Whether the queue is declared and bound to the exchange.
    pub fn is_bound(&self) -> bool {
        self.bound.load(Ordering::SeqCst)
    }

    fn mark_bound(&self) {
        self.bound.store(true, Ordering::SeqCst);
        self.bound_notify.notify_waiters();
    }

    /// Events handled and committed.
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }

    /// Deliveries of events already handled, skipped.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Deliveries that were not an event, rejected.
    pub fn malformed(&self) -> u64 {
        self.malformed.load(Ordering::Relaxed)
    }

    /// Handler or database failures (delivery requeued) and lost broker connections.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Failed events set aside for a later attempt (a retry schedule).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Events given up after the last attempt of their retry schedule.
    pub fn abandoned(&self) -> u64 {
        self.abandoned.load(Ordering::Relaxed)
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A running consumer: its task and its counters.
#[derive(Debug)]
pub struct ConsumerHandle {
    pub task: JoinHandle<()>,
    pub stats: Arc<ConsumerStats>,
}

impl ConsumerHandle {
    /// Waits until the queue is bound, at most `limit`: events published before that
    /// would have no queue to land in (on a first start). False if the broker is away.
    pub async fn bound(&self, limit: std::time::Duration) -> bool {
        let stats = Arc::clone(&self.stats);
        let wait = async move {
            loop {
                let notified = stats.bound_notify.notified();
                if stats.is_bound() {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// Resolves when the consumer has stopped.
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Starts consuming `queue`, bound to the exchange with each routing pattern of `bindings`
/// (`connection.#`). The inbox used for deduplication is the one `pool`'s schema holds.
pub fn spawn_consumer(
    pool: Pool,
    config: BusConfig,
    queue: impl Into<String>,
    bindings: Vec<String>,
    handler: Arc<dyn EventHandler>,
    shutdown: CancellationToken,
) -> ConsumerHandle {
    Consumer::new(pool, config, queue, bindings, handler).spawn(shutdown)
}

/// Like [`spawn_consumer`], for what every process must hear, each replica included (a
/// cache to forget): a queue of this process alone (`queue` and a unique suffix) that the
/// broker removes with its connection. What is published while it is disconnected is
/// not kept for it, so what it invalidates must expire on its own too.
pub fn spawn_broadcast_consumer(
    pool: Pool,
    config: BusConfig,
    queue: impl Into<String>,
    bindings: Vec<String>,
    handler: Arc<dyn EventHandler>,
    shutdown: CancellationToken,
) -> ConsumerHandle {
    let queue = format!("{}.{}", queue.into(), Uuid::new_v4().simple());
    let mut consumer = Consumer::new(pool, config, queue, bindings, handler);
    consumer.per_process = true;
    consumer.spawn(shutdown)
}

/// Like [`spawn_consumer`], for a handler that acts outside (an HTTP call to a partner),
/// one event at a time: an event whose handling fails waits `retries[n]` after its n-th
/// failure in a delay queue of its own (a durable queue whose messages expire back into
/// this one) while the queue goes on with the others; after the last, the handler is told
/// ([`EventHandler::abandoned`]) and the event is settled.
pub fn spawn_retrying_consumer(
    pool: Pool,
    config: BusConfig,
    queue: impl Into<String>,
    bindings: Vec<String>,
    handler: Arc<dyn EventHandler>,
    retries: Vec<std::time::Duration>,
    shutdown: CancellationToken,
) -> ConsumerHandle {
    let mut consumer = Consumer::new(pool, config, queue, bindings, handler);
    consumer.retries = retries;
    consumer.spawn(shutdown)
}

/// The delay queue where a retrying consumer of `queue` parks events for `delay`.
pub fn delay_queue(queue: &str, delay: std::time::Duration) -> String {
    format!("{queue}.retry.{}ms", delay.as_millis())
}

/// Deliveries taken into one transaction stop growing past this many bytes of events.
const MAX_BATCH_BYTES: usize = 4 << 20;

/// The header that counts an event's failed attempts on its way through delay queues.
const ATTEMPT_HEADER: &str = "relais-attempt";

/// For each delivery: parse, record in the inbox and handle in one transaction, commit,
/// then acknowledge. A redelivered event finds itself in the inbox and is only acknowledged.
pub struct Consumer {
    pool: Pool,
    config: BusConfig,
    queue: String,
    bindings: Vec<String>,
    handler: Arc<dyn EventHandler>,
    stats: Arc<ConsumerStats>,
    /// The queue is this process's alone and goes with its connection.
    per_process: bool,
    /// Pauses before each new attempt of a failed event; empty: requeued at once.
    retries: Vec<std::time::Duration>,
}

impl Consumer {
    pub fn new(
        pool: Pool,
        config: BusConfig,
        queue: impl Into<String>,
        bindings: Vec<String>,
        handler: Arc<dyn EventHandler>,
    ) -> Self {
        Self {
            pool,
            config,
            queue: queue.into(),
            bindings,
            handler,
            stats: Arc::default(),
            per_process: false,
            retries: Vec::new(),
        }
    }

    pub fn stats(&self) -> Arc<ConsumerStats> {
        Arc::clone(&self.stats)
    }

    fn spawn(self, shutdown: CancellationToken) -> ConsumerHandle {
        let stats = self.stats();
        ConsumerHandle {
            task: tokio::spawn(self.run(shutdown)),
            stats,
        }
    }

    /// Runs until `shutdown`; the delivery in hand is finished first, and those prefetched
    /// go back to the queue when the channel closes.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(self.config.max_backoff());
        loop {
            match self.session(&shutdown, &mut backoff).await {
                Ok(()) => return,
                Err(error) => {
                    ConsumerStats::count(&self.stats.failures);
                    tracing::warn!(
                        %error,
                        queue = %self.queue,
                        broker = %self.config.redacted_url(),
                        "consumer interrupted; reconnecting"
                    );
                    if !backoff.wait(&shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    async fn session(
        &self,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), BusError> {
        let name = format!("relais-consumer {}", self.queue);
        let connection = amqp::connect(&self.config, &name).await?;
        let result = self.consume(&connection, shutdown, backoff).await;
        amqp::close(connection).await;
        result
    }

    async fn consume(
        &self,
        connection: &lapin::Connection,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), BusError> {
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
        amqp::declare_exchange(&channel, &self.config).await?;
        channel
            .queue_declare(
                &self.queue,
                QueueDeclareOptions {
                    durable: !self.per_process,
                    exclusive: self.per_process,
                    auto_delete: self.per_process,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        for pattern in &self.bindings {
            channel
                .queue_bind(
                    &self.queue,
                    &self.config.exchange,
                    pattern,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        let retry_channel = self.declare_delay_queues(connection).await?;
        self.stats.mark_bound();
        self.handler.connected().await;
        let tag = format!("relais-{}", Uuid::new_v4().simple());
        let mut deliveries = channel
            .basic_consume(
                &self.queue,
                &tag,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        backoff.reset();
        tracing::info!(queue = %self.queue, "consumer connected");
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                next = deliveries.next() => next,
            };
            let mut batch = Vec::new();
            match next {
                Some(Ok(delivery)) => batch.push(delivery),
                Some(Err(error)) => return Err(error.into()),
                None => return Err(BusError::ConsumerEnded),
            }
            // Whatever else has already arrived joins this one transaction, within a
            // size that keeps it short (a message may hold a relay batch of records).
            let mut bytes = batch.iter().map(|d| d.data.len()).sum::<usize>();
            while batch.len() < usize::from(self.config.prefetch) && bytes < MAX_BATCH_BYTES {
                match deliveries.next().now_or_never() {
                    Some(Some(Ok(delivery))) => {
                        bytes += delivery.data.len();
                        batch.push(delivery);
                    }
                    Some(Some(Err(error))) => return Err(error.into()),
                    Some(None) | None => break,
                }
            }
            self.deliver_batch(batch, retry_channel.as_ref(), shutdown)
                .await?;
        }
    }

    fn delay_queue(&self, delay: std::time::Duration) -> String {
        delay_queue(&self.queue, delay)
    }

    /// The delay queues of the retry schedule, and a channel with publisher confirms to
    /// move failed events into them; none without a schedule.
    async fn declare_delay_queues(
        &self,
        connection: &lapin::Connection,
    ) -> Result<Option<lapin::Channel>, BusError> {
        if self.retries.is_empty() {
            return Ok(None);
        }
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await?;
        for delay in &self.retries {
            let mut args = FieldTable::default();
            let ttl = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
            // Expired messages go straight back to this queue, not to the exchange: no
            // other consumer sees a retry.
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString("".into()),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(self.queue.clone().into()),
            );
            channel
                .queue_declare(
                    &self.delay_queue(*delay),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    args,
                )
                .await?;
        }
        Ok(Some(channel))
    }

    /// Handles deliveries together; if the batch fails, each is handled alone so that
    /// one failing event holds back only itself.
    async fn deliver_batch(
        &self,
        batch: Vec<Delivery>,
        retry: Option<&lapin::Channel>,
        shutdown: &CancellationToken,
    ) -> Result<(), BusError> {
        let mut parsed = Vec::with_capacity(batch.len());
        for delivery in batch {
            match Event::from_message(&delivery.data) {
                Ok(events) => parsed.push((delivery, events)),
                Err(error) => self.reject_malformed(delivery, &error).await?,
            }
        }
        let events: Vec<&Event> = parsed.iter().flat_map(|(_, events)| events).collect();
        if events.len() == 1 || !self.handler.batches() || retry.is_some() {
            for (delivery, events) in parsed {
                self.deliver(delivery, &events, retry, shutdown).await?;
            }
            return Ok(());
        }
        match self.process_batch(&events).await {
            Ok(fresh) => {
                self.stats
                    .handled
                    .fetch_add(fresh as u64, Ordering::Relaxed);
                let skipped = (events.len() - fresh) as u64;
                self.stats.duplicates.fetch_add(skipped, Ordering::Relaxed);
                // One acknowledgement covers the batch: every earlier delivery on this
                // channel is settled by now.
                if let Some((last, _)) = parsed.last() {
                    last.ack(BasicAckOptions { multiple: true }).await?;
                }
            }
            Err(error) => {
                ConsumerStats::count(&self.stats.failures);
                tracing::warn!(queue = %self.queue, %error, "batch failed; handling its events one by one");
                for (delivery, events) in parsed {
                    self.deliver(delivery, &events, None, shutdown).await?;
                }
            }
        }
        Ok(())
    }

    async fn reject_malformed(
        &self,
        delivery: Delivery,
        error: &impl std::fmt::Display,
    ) -> Result<(), BusError> {
        ConsumerStats::count(&self.stats.malformed);
        // The body is not logged: it may carry identity data.
        tracing::warn!(
            queue = %self.queue,
            routing_key = %delivery.routing_key,
            bytes = delivery.data.len(),
            %error,
            "malformed message rejected"
        );
        delivery
            .reject(BasicRejectOptions { requeue: false })
            .await?;
        Ok(())
    }

    /// Handles the events of one delivery one at a time, then settles it. A failed event
    /// goes alone to its next attempt when there is a retry schedule (the others of its
    /// message are done); without one the whole delivery goes back to the queue, and the
    /// events already handled are skipped when it returns.
    async fn deliver(
        &self,
        delivery: Delivery,
        events: &[Event],
        retry: Option<&lapin::Channel>,
        shutdown: &CancellationToken,
    ) -> Result<(), BusError> {
        for event in events {
            match self.process(event).await {
                Ok(true) => ConsumerStats::count(&self.stats.handled),
                Ok(false) => {
                    ConsumerStats::count(&self.stats.duplicates);
                    tracing::debug!(queue = %self.queue, event_id = %event.id, "duplicate delivery skipped");
                }
                Err(error) => {
                    ConsumerStats::count(&self.stats.failures);
                    tracing::warn!(
                        queue = %self.queue,
                        event_id = %event.id,
                        kind = %event.kind,
                        %error,
                        "event handling failed; it goes back to the queue"
                    );
                    let Some(channel) = retry else {
                        return self.requeue_after_pause(delivery, shutdown).await;
                    };
                    if !self.retry_later(channel, &delivery, event, &error).await? {
                        return self.requeue_after_pause(delivery, shutdown).await;
                    }
                }
            }
        }
        delivery.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    /// Puts a delivery back in its queue after a pause, so a failing dependency is not
    /// hammered by immediate redeliveries.
    async fn requeue_after_pause(
        &self,
        delivery: Delivery,
        shutdown: &CancellationToken,
    ) -> Result<(), BusError> {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(self.config.retry_delay()) => {}
        }
        delivery
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await?;
        Ok(())
    }

    /// Moves a failed event to the delay queue of its next attempt, or gives it up after
    /// the last. False when giving it up failed: its delivery must go back.
    async fn retry_later(
        &self,
        channel: &lapin::Channel,
        delivery: &Delivery,
        event: &Event,
        error: &BusError,
    ) -> Result<bool, BusError> {
        let failed = attempts_of(delivery) + 1;
        let next = usize::try_from(failed - 1)
            .ok()
            .and_then(|i| self.retries.get(i));
        match next {
            Some(delay) => {
                let mut headers = FieldTable::default();
                headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(failed));
                let properties = lapin::BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into())
                    .with_message_id(event.id.to_string().into())
                    .with_headers(headers);
                // The event alone: the others of its message are done.
                let confirm = channel
                    .basic_publish(
                        "",
                        &self.delay_queue(*delay),
                        lapin::options::BasicPublishOptions::default(),
                        &event.to_json()?,
                        properties,
                    )
                    .await?
                    .await?;
                if confirm.is_nack() {
                    return Err(BusError::RetryRefused);
                }
                ConsumerStats::count(&self.stats.retries);
            }
            None => {
                if let Err(e) = self
                    .process_as(event, Some((failed, &error.to_string())))
                    .await
                {
                    tracing::warn!(queue = %self.queue, event_id = %event.id, error = %e, "giving up an event failed; it goes back to the queue");
                    return Ok(false);
                }
                ConsumerStats::count(&self.stats.abandoned);
                tracing::warn!(queue = %self.queue, event_id = %event.id, kind = %event.kind, attempts = failed, "event given up after its last attempt");
            }
        }
        Ok(true)
    }

    /// Claims the batch's events in the inbox and hands the new ones, in order and each
    /// once, to the handler, in one transaction. Returns how many were new.
    async fn process_batch(&self, events: &[&Event]) -> Result<usize, BusError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if self.handler.deduplicates() {
            let fresh = match self.handler.handle_new(&tx, events).await {
                Ok(fresh) => fresh,
                Err(error) => {
                    if let Err(rollback) = tx.rollback().await {
                        tracing::debug!(%rollback, "rollback after a handler error failed");
                    }
                    return Err(BusError::Handler(error));
                }
            };
            tx.commit().await?;
            self.handler.committed();
            return Ok(fresh);
        }
        let claim = tx
            .prepare_cached(
                "INSERT INTO inbox (consumer, event_id) SELECT $1, id FROM unnest($2::uuid[]) AS id \
                 ON CONFLICT DO NOTHING RETURNING event_id",
            )
            .await?;
        let ids: Vec<Uuid> = events.iter().map(|event| event.id).collect();
        let mut claimed: std::collections::HashSet<Uuid> = tx
            .query(&claim, &[&self.queue, &ids])
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        // An event delivered twice in one batch is handled at its first delivery.
        let fresh: Vec<&Event> = events
            .iter()
            .filter(|event| claimed.remove(&event.id))
            .copied()
            .collect();
        if !fresh.is_empty()
            && let Err(error) = self.handler.handle_batch(&tx, &fresh).await
        {
            if let Err(rollback) = tx.rollback().await {
                tracing::debug!(%rollback, "rollback after a handler error failed");
            }
            return Err(BusError::Handler(error));
        }
        tx.commit().await?;
        self.handler.committed();
        Ok(fresh.len())
    }

    /// True if the handler ran, false if the event was already in the inbox.
    async fn process(&self, event: &Event) -> Result<bool, BusError> {
        self.process_as(event, None).await
    }

    /// Claims `event` in the inbox and, in the same transaction, hands it to the handler:
    /// to handle, or, after its last attempt (`attempts`, the last error), to record as
    /// given up. False if it was already in the inbox.
    async fn process_as(
        &self,
        event: &Event,
        given_up: Option<(u32, &str)>,
    ) -> Result<bool, BusError> {
        if given_up.is_none() && self.handler.deduplicates() {
            return Ok(self.process_batch(&[event]).await? > 0);
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let claim = tx
            .prepare_cached(
                "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .await?;
        if tx.execute(&claim, &[&self.queue, &event.id]).await? == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let handled = match given_up {
            None => self.handler.handle(&tx, event).await,
            Some((attempts, error)) => self.handler.abandoned(&tx, event, attempts, error).await,
        };
        if let Err(error) = handled {
            if let Err(rollback) = tx.rollback().await {
                tracing::debug!(%rollback, "rollback after a handler error failed");
            }
            return Err(BusError::Handler(error));
        }
        tx.commit().await?;
        self.handler.committed();
        Ok(true)
    }
}
