use std::sync::Arc;
use std::time::Duration;

use relais_bus::Event;

use crate::common::{Hub, Recorder, connection_event, wait_until};

/// A per-process queue goes with its connection: back from an outage the consumer says
/// so to its handler (which must start afresh: what was published meanwhile is gone),
/// and consumes again.
#[tokio::test]
async fn a_broadcast_consumer_tells_its_handler_of_each_connection() {
    let hub = Hub::start().await;
    let proxy = relais_testkit::TcpProxy::start(hub.bus.broker_addr()).await;
    let recorder = Arc::new(Recorder::default());
    let consumer = relais_bus::spawn_broadcast_consumer(
        hub.consumer.clone(),
        hub.bus.config_via(proxy.addr()),
        hub.bus.queue("cache"),
        vec!["connection.#".to_owned()],
        Arc::clone(&recorder) as Arc<dyn relais_bus::EventHandler>,
        hub.shutdown.child_token(),
    );
    wait_until("the first connection", || async {
        recorder.connections() == 1
    })
    .await;
    let first = connection_event();
    hub.publish_raw(&first.kind, &first.to_json().unwrap())
        .await;
    recorder.wait_for(1).await;

    proxy.cut();
    wait_until("the consumer to lose its link", || async {
        consumer.stats.failures() > 0
    })
    .await;
    proxy.restore();
    wait_until("the second connection", || async {
        recorder.connections() == 2
    })
    .await;
    let second = connection_event();
    hub.publish_raw(&second.kind, &second.to_json().unwrap())
        .await;
    recorder.wait_for(2).await;
    assert_eq!(recorder.seen(), vec![first.id, second.id]);
    hub.stop(vec![consumer.task]).await;
}

#[tokio::test]
async fn a_duplicate_delivery_is_acknowledged_without_running_the_handler_again() {
    let hub = Hub::start().await;
    let recorder = Arc::new(Recorder::default());
    let consumer = hub.consume(hub.bus.config(), &recorder).await;

    let event = connection_event();
    let body = event.to_json().unwrap();
    hub.publish_raw(&event.kind, &body).await;
    hub.publish_raw(&event.kind, &body).await;
    let sentinel = connection_event();
    hub.publish_raw(&sentinel.kind, &sentinel.to_json().unwrap())
        .await;

    recorder.wait_for(2).await;
    // The recorder hears the sentinel before its commit: wait for the counts, which
    // follow the commits, whichever way the three deliveries were batched.
    wait_until("the duplicate and both events to be counted", || async {
        consumer.stats.duplicates() == 1 && consumer.stats.handled() == 2
    })
    .await;
    assert_eq!(recorder.attempts(), vec![event.id, sentinel.id]);
    assert_eq!(hub.handled_rows().await, 2);
    assert_eq!(consumer.stats.handled(), 2);

    hub.stop(vec![consumer.task]).await;
}

#[tokio::test]
async fn malformed_messages_are_rejected_and_consuming_goes_on() {
    let hub = Hub::start().await;
    let recorder = Arc::new(Recorder::default());
    let consumer = hub.consume(hub.bus.config(), &recorder).await;

    hub.publish_raw("connection.token_issued", b"not json at all")
        .await;
    hub.publish_raw("connection.token_issued", br#"{"id":"not-a-uuid"}"#)
        .await;
    let valid = connection_event();
    hub.publish_raw(&valid.kind, &valid.to_json().unwrap())
        .await;

    recorder.wait_for(1).await;
    assert_eq!(recorder.seen(), vec![valid.id]);
    assert_eq!(consumer.stats.malformed(), 2);
    assert_eq!(consumer.stats.failures(), 0);
    assert!(!consumer.task.is_finished());

    hub.stop(vec![consumer.task]).await;
}

#[tokio::test]
async fn a_failing_handler_rolls_back_and_the_event_is_retried() {
    let hub = Hub::start().await;
    let recorder = Arc::new(Recorder::default());
    let consumer = hub.consume(hub.bus.config(), &recorder).await;

    let event: Event = connection_event();
    recorder.fail_once(event.id);
    hub.publish_raw(&event.kind, &event.to_json().unwrap())
        .await;

    // Counted after the commit (the recorder hears the handler before it).
    wait_until("the retried event to be handled", || async {
        consumer.stats.handled() == 1
    })
    .await;
    assert_eq!(recorder.attempts(), vec![event.id, event.id]);
    assert_eq!(consumer.stats.failures(), 1);
    assert_eq!(consumer.stats.handled(), 1);
    // The first attempt's write was rolled back with its inbox entry.
    assert_eq!(hub.handled_rows().await, 1);

    hub.stop(vec![consumer.task]).await;
}

#[tokio::test]
async fn events_waiting_together_are_each_handled_once_and_a_failing_one_holds_back_only_itself() {
    let hub = Hub::start().await;
    let recorder = Arc::new(Recorder::default());
    // Declares the queue, then stops: what follows waits in the queue.
    let stop = hub.shutdown.child_token();
    let first = hub
        .consume_until(hub.bus.config(), &recorder, stop.clone())
        .await;
    stop.cancel();
    first.wait().await;

    let events: Vec<Event> = (0..10).map(|_| connection_event()).collect();
    recorder.fail_once(events[5].id);
    for (i, event) in events.iter().enumerate() {
        hub.publish_raw(&event.kind, &event.to_json().unwrap())
            .await;
        if i == 3 {
            hub.publish_raw(&event.kind, &event.to_json().unwrap())
                .await;
            hub.publish_raw(&event.kind, b"{ truncated").await;
        }
    }
    let consumer = hub.consume(hub.bus.config(), &recorder).await;

    wait_until("every event to be handled", || async {
        consumer.stats.handled() == 10
    })
    .await;
    assert_eq!(hub.handled_rows().await, 10);
    assert_eq!(consumer.stats.duplicates(), 1);
    assert_eq!(consumer.stats.malformed(), 1);
    assert_eq!(consumer.stats.failures(), 1);
    let attempts = recorder.attempts();
    assert!(attempts.iter().filter(|id| **id == events[5].id).count() >= 2);
    assert!(events.iter().all(|e| attempts.contains(&e.id)));
    assert!(
        recorder.commits() >= 1,
        "the handler is told of each commit"
    );

    hub.stop(vec![consumer.task]).await;
}

/// A handler that acts outside the transaction (mail) must not see a failed batch's
/// events again: it gets them one at a time.
#[tokio::test]
async fn a_handler_that_cannot_be_rolled_back_gets_each_event_once() {
    let hub = Hub::start().await;
    let recorder = Arc::new(Recorder::one_at_a_time());
    let stop = hub.shutdown.child_token();
    let first = hub
        .consume_until(hub.bus.config(), &recorder, stop.clone())
        .await;
    stop.cancel();
    first.wait().await;

    let events: Vec<Event> = (0..10).map(|_| connection_event()).collect();
    recorder.fail_once(events[5].id);
    for event in &events {
        hub.publish_raw(&event.kind, &event.to_json().unwrap())
            .await;
    }
    let consumer = hub.consume(hub.bus.config(), &recorder).await;
    wait_until("every event to be handled", || async {
        consumer.stats.handled() == 10
    })
    .await;
    let attempts = recorder.attempts();
    for (i, event) in events.iter().enumerate() {
        let tries = attempts.iter().filter(|id| **id == event.id).count();
        assert_eq!(tries, if i == 5 { 2 } else { 1 }, "event {i}");
    }
    assert_eq!(recorder.commits(), 10);

    hub.stop(vec![consumer.task]).await;
}

#[tokio::test]
async fn a_retrying_consumer_sets_a_failing_event_aside_and_gives_it_up_after_its_schedule() {
    let hub = Hub::start().await;
    let recorder = Arc::new(Recorder::one_at_a_time());
    let schedule = vec![Duration::from_millis(300), Duration::from_millis(600)];
    let consumer = hub.consume_retrying(&recorder, schedule).await;

    let (stuck, flaky, healthy) = (connection_event(), connection_event(), connection_event());
    recorder.fail_times(stuck.id, usize::MAX);
    recorder.fail_once(flaky.id);
    for event in [&stuck, &flaky, &healthy] {
        hub.publish_raw(&event.kind, &event.to_json().unwrap())
            .await;
    }

    wait_until("the stuck event to be given up", || async {
        consumer.stats.abandoned() == 1
    })
    .await;
    // Tried once and after each pause of the schedule, then given up once.
    let attempts = recorder.attempts();
    assert_eq!(attempts.iter().filter(|id| **id == stuck.id).count(), 3);
    assert_eq!(recorder.abandoned(), vec![(stuck.id, 3)]);
    // The others did not wait behind it: both were handled before its last attempt.
    let last_stuck = attempts.iter().rposition(|id| *id == stuck.id).unwrap();
    for id in [flaky.id, healthy.id] {
        let at = attempts.iter().rposition(|x| *x == id).unwrap();
        assert!(at < last_stuck, "{id} waited behind the failing event");
    }
    assert_eq!(recorder.seen().len(), 2);
    assert_eq!(consumer.stats.retries(), 3);
    // What failed was rolled back each time: only the two handled events wrote.
    assert_eq!(hub.handled_rows().await, 2);

    hub.stop(vec![consumer.task]).await;
}

fn batch_message(events: &[&Event]) -> Vec<u8> {
    serde_json::to_vec(events).unwrap()
}

/// A message holding several records: each is handled once, and one that fails sends
/// the message back whole, its handled records skipped when it returns.
#[tokio::test]
async fn each_record_of_a_batch_message_is_handled_once_even_when_one_fails() {
    let hub = Hub::start().await;
    let recorder = Arc::new(Recorder::default());
    let consumer = hub.consume(hub.bus.config(), &recorder).await;

    let events: Vec<Event> = (0..3).map(|_| connection_event()).collect();
    recorder.fail_once(events[1].id);
    let refs: Vec<&Event> = events.iter().collect();
    hub.publish_raw("connection.batch", &batch_message(&refs))
        .await;
    // An empty batch is no event at all.
    hub.publish_raw("connection.batch", b"[]").await;

    // The empty batch may be reached after the records: both are waited for.
    wait_until(
        "every record to be handled and the empty batch rejected",
        || async { consumer.stats.handled() == 3 && consumer.stats.malformed() == 1 },
    )
    .await;
    // Each committed once (what a rolled-back attempt saw does not count).
    let seen: std::collections::HashSet<_> = recorder.seen().into_iter().collect();
    assert!(events.iter().all(|e| seen.contains(&e.id)));
    assert_eq!(hub.handled_rows().await, 3);
    assert_eq!(consumer.stats.malformed(), 1);
    assert!(consumer.stats.failures() >= 1);
    let attempts = recorder.attempts();
    assert!(attempts.iter().filter(|id| **id == events[1].id).count() >= 2);

    hub.stop(vec![consumer.task]).await;
}

/// With a retry schedule, a failing record of a batch message waits alone: the others
/// of its message are handled once and not retried.
#[tokio::test]
async fn a_retrying_consumer_retries_only_the_failing_record_of_a_batch_message() {
    let hub = Hub::start().await;
    let recorder = Arc::new(Recorder::one_at_a_time());
    let consumer = hub
        .consume_retrying(&recorder, vec![Duration::from_millis(300)])
        .await;

    let events: Vec<Event> = (0..3).map(|_| connection_event()).collect();
    recorder.fail_once(events[1].id);
    let refs: Vec<&Event> = events.iter().collect();
    hub.publish_raw("connection.batch", &batch_message(&refs))
        .await;

    wait_until("every record to be handled", || async {
        consumer.stats.handled() == 3
    })
    .await;
    let attempts = recorder.attempts();
    for (i, event) in events.iter().enumerate() {
        let tries = attempts.iter().filter(|id| **id == event.id).count();
        assert_eq!(tries, if i == 1 { 2 } else { 1 }, "record {i}");
    }
    assert_eq!(consumer.stats.retries(), 1);
    assert_eq!(consumer.stats.duplicates(), 0);
    assert_eq!(hub.handled_rows().await, 3);

    hub.stop(vec![consumer.task]).await;
}
