//! A producer schema, a consumer schema and an exchange of the test's own, and a handler
//! that records what it is given.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use deadpool_postgres::{Pool, Transaction};
use lapin::{
    BasicProperties,
    options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions},
    types::FieldTable,
};
use relais_bus::{
    BusConfig, ConsumerHandle, Event, EventHandler, HandlerError, async_trait, enqueue,
    events::{ConnectionEvent, ConnectionStep, Outcome},
    migrate, outbox_depth, spawn_consumer,
};
use relais_testkit::{TestBus, TestDb};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(20);

pub struct Hub {
    pub db: TestDb,
    pub bus: TestBus,
    /// The publishing service's schema.
    pub producer: Pool,
    /// The consuming service's schema, with a `handled` table the handler writes to.
    pub consumer: Pool,
    /// What the producer commits through: wakes the relay.
    pub outbox: relais_bus::Outbox,
    pub shutdown: CancellationToken,
}

impl Hub {
    pub async fn start() -> Self {
        let db = TestDb::create().await;
        let producer = db.pool("producer", 4).await;
        let consumer = db.pool("consumer", 4).await;
        migrate(&mut producer.get().await.unwrap()).await.unwrap();
        let mut client = consumer.get().await.unwrap();
        migrate(&mut client).await.unwrap();
        client
            .batch_execute("CREATE TABLE handled (event_id uuid PRIMARY KEY)")
            .await
            .unwrap();
        Self {
            db,
            bus: TestBus::new(),
            producer,
            consumer,
            outbox: relais_bus::Outbox::default(),
            shutdown: CancellationToken::new(),
        }
    }

    /// Starts a consumer on `connection.#` and waits until it is bound and consuming.
    pub async fn consume(&self, config: BusConfig, recorder: &Arc<Recorder>) -> ConsumerHandle {
        self.consume_until(config, recorder, self.shutdown.child_token())
            .await
    }

    /// A consumer that stops at `stop`; its queue stays, and fills while none consumes.
    pub async fn consume_until(
        &self,
        config: BusConfig,
        recorder: &Arc<Recorder>,
        stop: CancellationToken,
    ) -> ConsumerHandle {
        let queue = self.bus.queue("trace");
        let handle = spawn_consumer(
            self.consumer.clone(),
            config,
            queue.clone(),
            vec!["connection.#".to_owned()],
            Arc::clone(recorder) as Arc<dyn EventHandler>,
            stop,
        );
        self.wait_for_consumer(&queue).await;
        handle
    }

    /// A consumer with a retry schedule, its delay queues deleted with the test's.
    pub async fn consume_retrying(
        &self,
        recorder: &Arc<Recorder>,
        retries: Vec<Duration>,
    ) -> ConsumerHandle {
        let queue = self.bus.queue("notifier");
        for delay in &retries {
            self.bus.track(&relais_bus::delay_queue(&queue, *delay));
        }
        let handle = relais_bus::spawn_retrying_consumer(
            self.consumer.clone(),
            self.bus.config(),
            queue.clone(),
            vec!["connection.#".to_owned()],
            Arc::clone(recorder) as Arc<dyn EventHandler>,
            retries,
            self.shutdown.child_token(),
        );
        self.wait_for_consumer(&queue).await;
        handle
    }

    /// The consumer binds before it consumes: once the broker counts it, events routed
    /// to the exchange reach its queue.
    async fn wait_for_consumer(&self, queue: &str) {
        let connection = self.bus.connect().await;
        wait_until("the consumer to be consuming", || async {
            // A passive declare of a missing queue closes the channel: use a fresh one.
            let channel = connection.create_channel().await.unwrap();
            let declared = channel
                .queue_declare(
                    queue,
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await;
            matches!(declared, Ok(q) if q.consumer_count() > 0)
        })
        .await;
        // Channels closed by failed passive declares may make the close itself complain.
        let _ = connection.close(200, "done").await;
    }

    /// Enqueues connection events in one producer transaction, committed or rolled back.
    pub async fn enqueue(&self, count: usize, commit: bool) -> Vec<Uuid> {
        let mut client = self.producer.get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            let event = connection_event();
            enqueue(&tx, &event).await.unwrap();
            ids.push(event.id);
        }
        if commit {
            self.outbox.commit(tx).await.unwrap();
        } else {
            tx.rollback().await.unwrap();
        }
        ids
    }

    pub async fn outbox_depth(&self) -> i64 {
        outbox_depth(&self.producer.get().await.unwrap())
            .await
            .unwrap()
    }

    /// Rows the handler committed in the consumer's schema.
    pub async fn handled_rows(&self) -> i64 {
        let client = self.consumer.get().await.unwrap();
        client
            .query_one("SELECT count(*) FROM handled", &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Publishes raw bytes straight to the exchange, as a misbehaving publisher would.
    pub async fn publish_raw(&self, routing_key: &str, body: &[u8]) {
        let connection = self.bus.connect().await;
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let confirm = channel
            .basic_publish(
                self.bus.exchange(),
                routing_key,
                BasicPublishOptions::default(),
                body,
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
        connection.close(200, "done").await.unwrap();
    }

    pub async fn stop(self, tasks: Vec<tokio::task::JoinHandle<()>>) {
        self.shutdown.cancel();
        for task in tasks {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("a bus task ignored shutdown")
                .unwrap();
        }
        self.bus.cleanup().await;
        self.db.cleanup().await;
    }
}

pub fn connection_event() -> Event {
    let mut payload = ConnectionEvent::new("cnx-1", ConnectionStep::TokenIssued, Outcome::Success);
    payload.sp_id = Some("sp-1".to_owned());
    Event::from_payload("oidc-front", &payload).unwrap()
}

/// Records each event it handles, writes it to `handled` in the consumer's transaction,
/// and fails once for the ids it was told to.
#[derive(Default)]
pub struct Recorder {
    seen: Mutex<Vec<Uuid>>,
    attempts: Mutex<Vec<Uuid>>,
    /// Failures still to inject, per event.
    fail: Mutex<HashMap<Uuid, usize>>,
    abandoned: Mutex<Vec<(Uuid, u32)>>,
    commits: std::sync::atomic::AtomicUsize,
    /// How many times the consumer said it was (re)connected.
    connections: std::sync::atomic::AtomicUsize,
    /// As a handler that acts outside the transaction would ask.
    one_at_a_time: bool,
}

impl Recorder {
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Uuid> {
        self.seen.lock().unwrap().clone()
    }

    pub fn attempts(&self) -> Vec<Uuid> {
        self.attempts.lock().unwrap().clone()
    }

    /// A handler that asks for one event at a time.
    pub fn one_at_a_time() -> Self {
        Self {
            one_at_a_time: true,
            ..Self::default()
        }
    }

    /// Transactions of handled events that committed.
    pub fn commits(&self) -> usize {
        self.commits.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn fail_once(&self, id: Uuid) {
        self.fail_times(id, 1);
    }

    pub fn fail_times(&self, id: Uuid, times: usize) {
        self.fail.lock().unwrap().insert(id, times);
    }

    /// Events given up, with the attempts they had.
    pub fn abandoned(&self) -> Vec<(Uuid, u32)> {
        self.abandoned.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, count: usize) {
        wait_until("events to be handled", || async {
            self.seen().len() >= count
        })
        .await;
    }
}

#[async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, tx: &Transaction<'_>, event: &Event) -> Result<(), HandlerError> {
        self.attempts.lock().unwrap().push(event.id);
        tx.execute("INSERT INTO handled (event_id) VALUES ($1)", &[&event.id])
            .await?;
        if let Some(left) = self.fail.lock().unwrap().get_mut(&event.id)
            && *left > 0
        {
            *left -= 1;
            return Err("injected failure".into());
        }
        self.seen.lock().unwrap().push(event.id);
        Ok(())
    }

    fn batches(&self) -> bool {
        !self.one_at_a_time
    }

    async fn abandoned(
        &self,
        _tx: &Transaction<'_>,
        event: &Event,
        attempts: u32,
        _error: &str,
    ) -> Result<(), HandlerError> {
        self.abandoned.lock().unwrap().push((event.id, attempts));
        Ok(())
    }

    fn committed(&self) {
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    async fn connected(&self) {
        self.connections
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
