use relais_bus::{
    MIGRATION_TABLE, change_with_events, change_with_filled_events, enqueue, enqueue_all, migrate,
    outbox_depth, purge_inbox,
};
use relais_testkit::TestDb;
use time::{Duration, OffsetDateTime};

use crate::common::connection_event;

/// A database of the test's own with the bus tables in schema `svc`.
async fn migrated() -> (TestDb, deadpool_postgres::Pool) {
    let db = TestDb::create().await;
    let pool = db.pool("svc", 2).await;
    migrate(&mut pool.get().await.unwrap()).await.unwrap();
    (db, pool)
}

#[tokio::test]
async fn migrations_land_in_the_pool_schema_under_their_own_history_table() {
    let (db, pool) = migrated().await;
    let mut client = pool.get().await.unwrap();
    // Running again at every start is harmless.
    migrate(&mut client).await.unwrap();

    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'svc' ORDER BY table_name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(tables, [MIGRATION_TABLE, "inbox", "outbox"]);
    drop(client);
    db.cleanup().await;
}

#[tokio::test]
async fn an_event_is_in_the_outbox_only_if_its_transaction_commits() {
    let (db, pool) = migrated().await;
    let mut client = pool.get().await.unwrap();

    let tx = client.transaction().await.unwrap();
    enqueue(&tx, &connection_event()).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(outbox_depth(&client).await.unwrap(), 0);

    let event = connection_event();
    let tx = client.transaction().await.unwrap();
    enqueue(&tx, &event).await.unwrap();
    tx.commit().await.unwrap();
    let row = client
        .query_one("SELECT id, kind, body->>'source' FROM outbox", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, uuid::Uuid>(0), event.id);
    assert_eq!(row.get::<_, String>(1), "connection.token_issued");
    assert_eq!(row.get::<_, String>(2), "oidc-front");

    // The event id is unique: queueing the same event twice is a caller bug, refused.
    assert!(enqueue(&client, &event).await.is_err());
    drop(client);
    db.cleanup().await;
}

#[tokio::test]
async fn purging_the_inbox_forgets_only_old_entries() {
    let (db, pool) = migrated().await;
    let client = pool.get().await.unwrap();
    client
        .batch_execute(
            "INSERT INTO inbox (consumer, event_id, processed_at) VALUES
             ('q', gen_random_uuid(), now() - interval '40 days'),
             ('q', gen_random_uuid(), now() - interval '1 day')",
        )
        .await
        .unwrap();

    let purged = purge_inbox(&client, OffsetDateTime::now_utc() - Duration::days(30))
        .await
        .unwrap();
    assert_eq!(purged, 1);
    let left: i64 = client
        .query_one("SELECT count(*) FROM inbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 1);
    drop(client);
    db.cleanup().await;
}

#[tokio::test]
async fn a_change_and_its_events_land_together_in_order_or_not_at_all() {
    let (db, pool) = migrated().await;
    let client = pool.get().await.unwrap();
    client
        .batch_execute("CREATE TABLE things (id int PRIMARY KEY)")
        .await
        .unwrap();
    let insert = "INSERT INTO things (id) VALUES ($1)";

    let events: Vec<_> = (0..3).map(|_| connection_event()).collect();
    change_with_events(&client, insert, &[&1_i32], &events)
        .await
        .unwrap();
    // The same key again: the change fails, and its events are not queued either.
    let refused: Vec<_> = (0..2).map(|_| connection_event()).collect();
    assert!(
        change_with_events(&client, insert, &[&1_i32], &refused)
            .await
            .is_err()
    );
    enqueue_all(&client, &[connection_event()]).await.unwrap();

    let queued: Vec<uuid::Uuid> = client
        .query("SELECT id FROM outbox ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(queued.len(), 4);
    assert_eq!(queued[..3], events.iter().map(|e| e.id).collect::<Vec<_>>());
    let things: i64 = client
        .query_one("SELECT count(*) FROM things", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(things, 1);
    drop(client);
    db.cleanup().await;
}

#[tokio::test]
async fn an_event_filled_by_its_change_is_queued_with_what_the_change_found_and_only_with_it() {
    let (db, pool) = migrated().await;
    let client = pool.get().await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE codes (code TEXT PRIMARY KEY, connection TEXT, used BOOLEAN); \
             INSERT INTO codes VALUES ('c1', 'cnx-found', false)",
        )
        .await
        .unwrap();
    let ctes = "change AS (UPDATE codes SET used = true WHERE code = $1 AND NOT used \
                RETURNING code, jsonb_build_object('connection_id', connection) AS fill)";
    // The caller does not know the connection: the change does.
    let mut event = connection_event();
    event.payload["connection_id"] = serde_json::Value::from("");
    let row = change_with_filled_events(&client, ctes, &[&"c1"], std::slice::from_ref(&event))
        .await
        .unwrap()
        .expect("the change found the code");
    assert_eq!(row.get::<_, String>("code"), "c1");
    let body: serde_json::Value = client
        .query_one("SELECT body FROM outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(body["id"], event.id.to_string());
    assert_eq!(body["payload"]["connection_id"], "cnx-found");
    // What the caller set and the change did not fill stays.
    assert_eq!(body["payload"]["sp_id"], "sp-1");
    let decoded: relais_bus::Event = serde_json::from_value(body).unwrap();
    assert_eq!(decoded.kind, event.kind);

    // A change that finds nothing queues nothing.
    let again = connection_event();
    let none = change_with_filled_events(&client, ctes, &[&"c1"], &[again])
        .await
        .unwrap();
    assert!(none.is_none());
    assert_eq!(outbox_depth(&client).await.unwrap(), 1);
    drop(client);
    db.cleanup().await;
}
