use relais_testkit::TestDb;
use tokio_postgres::NoTls;

async fn database_exists(name: &str) -> bool {
    let admin = std::env::var("RELAIS_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let (client, connection) = tokio_postgres::connect(&admin, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn a_pool_works_in_its_schema_and_cleanup_drops_the_database() {
    let db = TestDb::create().await;
    let name = db.name().to_owned();
    assert!(name.starts_with("relais_test_"));
    assert!(db.url().ends_with(&format!("/{name}")));
    assert!(database_exists(&name).await);

    let pool = db.pool("registry", 2).await;
    let client = pool.get().await.unwrap();
    client
        .batch_execute("CREATE TABLE partner (id text)")
        .await
        .unwrap();
    let schema: String = client
        .query_one(
            "SELECT table_schema::text FROM information_schema.tables WHERE table_name = 'partner'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(schema, "registry");

    // Open connections do not keep the database alive.
    db.cleanup().await;
    assert!(!database_exists(&name).await);
    drop(client);
}

#[tokio::test]
async fn dropping_without_cleanup_drops_the_database_too() {
    let db = TestDb::create().await;
    let name = db.name().to_owned();
    let pool = db.pool("trace", 1).await;
    let _client = pool.get().await.unwrap();
    drop(db);
    assert!(!database_exists(&name).await);
}
