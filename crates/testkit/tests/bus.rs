use lapin::{
    Connection, ConnectionProperties, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueDeclareOptions},
    types::FieldTable,
};
use relais_testkit::TestBus;

async fn connect(url: &str) -> Connection {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    Connection::connect(url, properties).await.unwrap()
}

async fn declare_exchange(connection: &Connection, name: &str, passive: bool) -> bool {
    // A failed passive declare closes its channel: one channel per question.
    let channel = connection.create_channel().await.unwrap();
    let options = ExchangeDeclareOptions {
        passive,
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(name, ExchangeKind::Topic, options, FieldTable::default())
        .await
        .is_ok()
}

async fn declare_queue(connection: &Connection, name: &str, passive: bool) -> bool {
    let channel = connection.create_channel().await.unwrap();
    let options = QueueDeclareOptions {
        passive,
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name, options, FieldTable::default())
        .await
        .is_ok()
}

/// Declares the bus's exchange and one of its queues, as a test using them would.
async fn use_bus(bus: &TestBus) -> (String, String) {
    let queue = bus.queue("trace");
    assert!(queue.starts_with(bus.exchange()));
    let connection = bus.connect().await;
    assert!(declare_exchange(&connection, bus.exchange(), false).await);
    assert!(declare_queue(&connection, &queue, false).await);
    let _ = connection.close(200, "done").await;
    (bus.exchange().to_owned(), queue)
}

async fn assert_gone(url: &str, exchange: &str, queue: &str) {
    let connection = connect(url).await;
    assert!(
        !declare_exchange(&connection, exchange, true).await,
        "exchange left behind"
    );
    assert!(
        !declare_queue(&connection, queue, true).await,
        "queue left behind"
    );
    let _ = connection.close(200, "done").await;
}

#[tokio::test]
async fn cleanup_deletes_the_exchange_and_the_queues_it_named() {
    let bus = TestBus::new();
    assert!(bus.exchange().starts_with("relais.test."));
    let config = bus.config();
    assert_eq!(config.exchange, bus.exchange());
    config.validate().unwrap();
    let (exchange, queue) = use_bus(&bus).await;
    let url = bus.url().to_owned();

    bus.cleanup().await;
    assert_gone(&url, &exchange, &queue).await;
}

#[tokio::test]
async fn dropping_without_cleanup_deletes_them_too() {
    let bus = TestBus::new();
    let (exchange, queue) = use_bus(&bus).await;
    let url = bus.url().to_owned();

    drop(bus);
    assert_gone(&url, &exchange, &queue).await;
}

#[tokio::test]
async fn config_via_a_proxy_changes_only_the_address() {
    let bus = TestBus::new();
    let proxy: std::net::SocketAddr = "127.0.0.1:45678".parse().unwrap();
    let via = bus.config_via(proxy);
    let (before, after) = (
        url::Url::parse(bus.url()).unwrap(),
        url::Url::parse(&via.url).unwrap(),
    );
    assert_eq!(after.host_str(), Some("127.0.0.1"));
    assert_eq!(after.port(), Some(45678));
    assert_eq!(
        (after.username(), after.password(), after.path()),
        (before.username(), before.password(), before.path())
    );
    assert_eq!(
        relais_bus::BusConfig {
            url: bus.url().to_owned(),
            ..via
        },
        bus.config()
    );
    bus.cleanup().await;
}
