use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use uuid::Uuid;

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database on the shared server, dropped when this value is dropped.
///
/// The admin connection comes from `RELAIS_TEST_PG` (default
/// `postgres://postgres@127.0.0.1:5432/postgres`); the database is named
/// `relais_test_<uuid>`. Roles named `relais_test_<uuid>_…` (see [`TestDb::role_url`]) are
/// cluster-wide, so they are dropped with it.
pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
    dropped: bool,
}

impl TestDb {
    pub async fn create() -> Self {
        let admin_url =
            std::env::var("RELAIS_TEST_PG").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let name = format!("relais_test_{}", Uuid::new_v4().simple());
        let admin = connect(&admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let mut url = url::Url::parse(&admin_url)
            .unwrap_or_else(|e| panic!("RELAIS_TEST_PG is not a URL ({e}): {admin_url}"));
        url.set_path(&name);
        Self {
            name,
            url: url.to_string(),
            admin_url,
            dropped: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `postgres://…/<name>`: what a service under test is configured with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `postgres://relais_test_<uuid>_{service}@…/<name>`: a `database.url` giving each
    /// service a role of this database's own (`{service}` is left for the hub to fill).
    pub fn role_url(&self) -> String {
        let mut url = url::Url::parse(&self.url).expect("the test database URL parses");
        url.set_username(&format!("{}_SERVICE", self.name))
            .expect("the test database URL has a host");
        url.set_password(None)
            .expect("the test database URL has a host");
        url.to_string().replace("_SERVICE@", "_{service}@")
    }

    /// The URL of the login role `role` (no password: the test server trusts loopback).
    pub fn url_as(&self, role: &str) -> String {
        let mut url = url::Url::parse(&self.url).expect("the test database URL parses");
        url.set_username(role)
            .expect("the test database URL has a host");
        url.set_password(None)
            .expect("the test database URL has a host");
        url.to_string()
    }

    /// Makes sure the server speaks TLS, and gives its certificate (PEM). A server
    /// with `ssl = off` (a fresh machine's may be) is given `ssl = on` with the certificate
    /// it is configured with (Debian's `ssl-cert` package's by default), through
    /// `ALTER SYSTEM` and a configuration reload as the superuser the tests connect as:
    /// a setting of the machine's server, left on afterwards (it refuses nobody).
    pub async fn server_tls(&self) -> String {
        let admin = connect(&self.admin_url).await;
        let setting = |name: &'static str| {
            let admin = &admin;
            async move {
                admin
                    .query_one(&format!("SHOW {name}"), &[])
                    .await
                    .unwrap_or_else(|e| panic!("SHOW {name}: {e}"))
                    .get::<_, String>(0)
            }
        };
        let cert = setting("ssl_cert_file").await;
        if setting("ssl").await != "on" {
            let present = admin
                .query_one(
                    "SELECT pg_stat_file($1, true) IS NOT NULL AND pg_stat_file($2, true) IS NOT NULL",
                    &[&cert, &setting("ssl_key_file").await],
                )
                .await
                .unwrap_or_else(|e| panic!("cannot look for the server's certificate: {e}"))
                .get::<_, bool>(0);
            assert!(
                present,
                "PostgreSQL has ssl = off and no certificate at ssl_cert_file ({cert}): \
                 install Debian's ssl-cert package (its snakeoil certificate) or set one"
            );
            admin
                .batch_execute("ALTER SYSTEM SET ssl = on; SELECT pg_reload_conf();")
                .await
                .unwrap_or_else(|e| panic!("cannot turn PostgreSQL's ssl on: {e}"));
            for _ in 0..50 {
                if connect(&self.admin_url)
                    .await
                    .query_one("SHOW ssl", &[])
                    .await
                    .is_ok_and(|r| r.get::<_, String>(0) == "on")
                {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        // Read by the server: the file may be relative to its data directory.
        admin
            .query_one("SELECT pg_read_file($1)", &[&cert])
            .await
            .unwrap_or_else(|e| panic!("cannot read the server's certificate {cert}: {e}"))
            .get(0)
    }

    /// The parsed connection settings, from which each pool is made.
    fn pg_config(&self) -> tokio_postgres::Config {
        self.url
            .parse()
            .unwrap_or_else(|e| panic!("test database URL does not parse: {e}"))
    }

    /// A pool whose connections work in `schema` (created if missing) through their
    /// `search_path`, as each service's pool does.
    pub async fn pool(&self, schema: &str, max_size: usize) -> Pool {
        assert!(
            !schema.is_empty()
                && schema
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "schema name must be a plain lowercase identifier: {schema:?}"
        );
        connect(&self.url)
            .await
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create schema {schema}: {e}"));
        let mut config = self.pg_config();
        config.options(format!("-c search_path={schema}"));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(max_size)
            .build()
            .unwrap_or_else(|e| panic!("cannot build a pool for schema {schema}: {e}"))
    }

    /// Drops the database now; the `Drop` fallback does the same from a thread of its own.
    pub async fn cleanup(mut self) {
        self.dropped = true;
        drop_database(&self.admin_url, &self.name).await;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop cannot await, and may run inside a runtime: use a thread with its own.
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("test runtime");
            runtime.block_on(drop_database(&admin_url, &name));
        })
        .join();
        if outcome.is_err() {
            eprintln!("relais-testkit: could not drop test database {}", self.name);
        }
    }
}

async fn drop_database(admin_url: &str, name: &str) {
    let admin = connect(admin_url).await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap_or_else(|e| panic!("cannot drop test database {name}: {e}"));
    // Its roles had rights in it alone, gone with it: nothing else holds them.
    let roles = admin
        .query(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)",
            &[&format!("{name}_")],
        )
        .await
        .unwrap_or_else(|e| panic!("cannot list the roles of {name}: {e}"));
    for row in roles {
        let role: String = row.get(0);
        admin
            .batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""))
            .await
            .unwrap_or_else(|e| panic!("cannot drop test role {role}: {e}"));
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL ({e}); set RELAIS_TEST_PG"));
    tokio::spawn(async move {
        // The connection ends when the client is dropped; its error then is of no interest.
        let _ = connection.await;
    });
    client
}
