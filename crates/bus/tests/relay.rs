use std::{collections::HashSet, sync::Arc, time::Duration};

use relais_bus::spawn_relay;
use relais_testkit::TcpProxy;

use crate::common::{Hub, Recorder, wait_until};

/// Some time for anything that should not happen to show up.
const SETTLE: Duration = Duration::from_millis(700);

#[tokio::test]
async fn committed_events_arrive_once_each_in_order_and_rolled_back_ones_never() {
    let hub = Hub::start().await;
    let recorder = Arc::new(Recorder::default());
    let consumer = hub.consume(hub.bus.config(), &recorder).await;

    // Queued before the relay starts, across several batches.
    let mut expected = hub.enqueue(10, true).await;
    let rolled_back = hub.enqueue(5, false).await;
    expected.extend(hub.enqueue(7, true).await);
    let config = relais_bus::BusConfig {
        relay_batch: 4,
        ..hub.bus.config()
    };
    let relay = spawn_relay(
        hub.producer.clone(),
        hub.outbox.clone(),
        config,
        hub.shutdown.child_token(),
    );
    // Queued while it runs.
    expected.extend(hub.enqueue(3, true).await);
    let more_rolled_back = hub.enqueue(2, false).await;

    recorder.wait_for(expected.len()).await;
    wait_until("the outbox to drain", || async {
        hub.outbox_depth().await == 0
    })
    .await;
    tokio::time::sleep(SETTLE).await;

    assert_eq!(recorder.seen(), expected);
    let seen: HashSet<_> = recorder.seen().into_iter().collect();
    assert!(
        rolled_back
            .iter()
            .chain(&more_rolled_back)
            .all(|id| !seen.contains(id))
    );
    assert_eq!(hub.handled_rows().await, expected.len() as i64);
    assert_eq!(relay.stats.published(), expected.len() as u64);
    assert_eq!(relay.stats.failures(), 0);
    assert_eq!(consumer.stats.handled(), expected.len() as u64);
    assert_eq!(consumer.stats.duplicates(), 0);

    hub.stop(vec![relay.task, consumer.task]).await;
}

#[tokio::test]
async fn a_commit_through_the_outbox_wakes_the_relay_without_waiting_for_the_poll_interval() {
    let hub = Hub::start().await;
    let recorder = Arc::new(Recorder::default());
    let consumer = hub.consume(hub.bus.config(), &recorder).await;
    let config = relais_bus::BusConfig {
        // Far beyond the test's patience: only the commit can wake the relay in time.
        relay_interval_ms: 600_000,
        ..hub.bus.config()
    };
    let relay = spawn_relay(
        hub.producer.clone(),
        hub.outbox.clone(),
        config,
        hub.shutdown.child_token(),
    );

    let mut expected = hub.enqueue(1, true).await;
    recorder.wait_for(1).await;
    // The relay is now idle, waiting.
    tokio::time::sleep(SETTLE).await;
    expected.extend(hub.enqueue(1, true).await);
    recorder.wait_for(2).await;
    assert_eq!(recorder.seen(), expected);

    hub.stop(vec![relay.task, consumer.task]).await;
}

#[tokio::test]
async fn a_broker_outage_delays_events_and_each_then_arrives_exactly_once() {
    let hub = Hub::start().await;
    let proxy = TcpProxy::start(hub.bus.broker_addr()).await;
    let config = hub.bus.config_via(proxy.addr());
    let recorder = Arc::new(Recorder::default());
    let consumer = hub.consume(config.clone(), &recorder).await;
    let relay = spawn_relay(
        hub.producer.clone(),
        hub.outbox.clone(),
        config,
        hub.shutdown.child_token(),
    );
    let mut expected = hub.enqueue(1, true).await;
    recorder.wait_for(1).await;

    proxy.cut();
    for _ in 0..4 {
        expected.extend(hub.enqueue(3, true).await);
    }
    wait_until("the relay to notice the outage", || async {
        relay.stats.failures() > 0
    })
    .await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        hub.outbox_depth().await,
        12,
        "events must wait in the outbox"
    );
    assert_eq!(recorder.seen().len(), 1);

    proxy.restore();
    recorder.wait_for(expected.len()).await;
    wait_until("the outbox to drain", || async {
        hub.outbox_depth().await == 0
    })
    .await;
    tokio::time::sleep(SETTLE).await;

    assert_eq!(
        recorder.seen(),
        expected,
        "each event exactly once, in order"
    );
    assert_eq!(hub.handled_rows().await, expected.len() as i64);
    assert_eq!(relay.stats.published(), expected.len() as u64);
    assert!(
        consumer.stats.failures() > 0,
        "the consumer lost its link too"
    );

    hub.stop(vec![relay.task, consumer.task]).await;
}

/// Records queued together travel as one message (the broker stores and delivers one),
/// and the consumer still gets each once, in order.
#[tokio::test]
async fn records_relayed_together_travel_as_one_message_and_arrive_each_once_in_order() {
    let hub = Hub::start().await;
    let recorder = Arc::new(Recorder::default());
    let consumer = hub.consume(hub.bus.config(), &recorder).await;
    // A raw observer of what the broker carries.
    let mut observer = hub.bus.listen("connection.#").await;

    let expected = hub.enqueue(6, true).await;
    let relay = spawn_relay(
        hub.producer.clone(),
        hub.outbox.clone(),
        hub.bus.config(),
        hub.shutdown.child_token(),
    );
    recorder.wait_for(expected.len()).await;
    assert_eq!(recorder.seen(), expected);
    // The consumer may see the message before the relay has counted its confirm.
    wait_until("the relay to count what the broker confirmed", || async {
        relay.stats.published() == 6
    })
    .await;

    let wait = Duration::from_secs(5);
    let (key, body) = observer.next_message(wait).await.unwrap();
    assert_eq!(key, "connection.batch");
    let carried: Vec<_> = relais_bus::Event::from_message(&body)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(carried, expected);

    // A record relayed alone keeps its own kind: a consumer of one step still gets it.
    let alone = hub.enqueue(1, true).await;
    let (key, body) = observer.next_message(wait).await.unwrap();
    assert_eq!(key, "connection.token_issued");
    assert_eq!(relais_bus::Event::from_json(&body).unwrap().id, alone[0]);
    // Nothing else: the six records were one message.
    assert!(observer.next_message(SETTLE).await.is_none());

    hub.stop(vec![relay.task, consumer.task]).await;
}

/// A woken relay waits `relay_linger_ms` for more commits: records committed close
/// together, in separate transactions, travel as one message.
#[tokio::test]
async fn commits_close_together_are_relayed_as_one_message() {
    let hub = Hub::start().await;
    let recorder = Arc::new(Recorder::default());
    let consumer = hub.consume(hub.bus.config(), &recorder).await;
    let mut observer = hub.bus.listen("connection.#").await;
    let config = relais_bus::BusConfig {
        relay_linger_ms: 300,
        relay_interval_ms: 600_000,
        ..hub.bus.config()
    };
    let relay = spawn_relay(
        hub.producer.clone(),
        hub.outbox.clone(),
        config,
        hub.shutdown.child_token(),
    );
    // The relay idle, waiting.
    tokio::time::sleep(SETTLE).await;
    let mut expected = hub.enqueue(1, true).await;
    expected.extend(hub.enqueue(1, true).await);
    recorder.wait_for(2).await;
    assert_eq!(recorder.seen(), expected);

    let (key, body) = observer.next_message(Duration::from_secs(5)).await.unwrap();
    assert_eq!(key, "connection.batch");
    let carried: Vec<_> = relais_bus::Event::from_message(&body)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(carried, expected);
    assert!(observer.next_message(SETTLE).await.is_none());

    hub.stop(vec![relay.task, consumer.task]).await;
}
