//! Least privilege in PostgreSQL: every service signs in as a role of its own, made by
//! `relais admin db-roles`, migrates its own schema as that role, and PostgreSQL itself
//! refuses it any other service's tables.

use std::time::Duration;

use deadpool_postgres::tokio_postgres;
use relais::Service;
use relais_config::Secret;
use reqwest::StatusCode;
use tokio_postgres::error::SqlState;

use crate::harness::*;

const SCHEMAS: [&str; 4] = ["registry", "oidc_front", "trace", "support"];

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

fn role_of(stack: &Stack, schema: &str) -> String {
    format!("{}_{schema}", stack.db().name())
}

/// `statement` run as `schema`'s role is refused by PostgreSQL for want of privilege.
async fn refused(stack: &Stack, schema: &str, statement: &str) {
    let client = connect(&stack.db().url_as(&role_of(stack, schema))).await;
    let err = client
        .batch_execute(statement)
        .await
        .expect_err(&format!("{schema}'s role ran {statement}"));
    assert_eq!(
        err.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{schema}: {statement}: {err}"
    );
}

/// Every table of every schema is owned by its service's role.
async fn owned_by_their_roles(stack: &Stack) {
    let admin = connect(stack.db().url()).await;
    for schema in SCHEMAS {
        let rows = admin
            .query(
                "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relkind IN ('r', 'S')",
                &[&schema],
            )
            .await
            .unwrap();
        assert!(!rows.is_empty(), "{schema} has no table");
        for row in rows {
            let (table, owner): (String, String) = (row.get(0), row.get(1));
            assert_eq!(owner, role_of(stack, schema), "{schema}.{table}");
        }
        let owner: String = admin
            .query_one(
                "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1",
                &[&schema],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(owner, role_of(stack, schema), "schema {schema}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_runs_as_its_own_role_and_is_refused_the_other_schemas() {
    let stack = Stack::start_with(Options {
        db_roles: true,
        ..Options::default()
    })
    .await;
    // The hub works under its roles: a sign-in, its tokens and its proof.
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid");
    let code = code_of_sign_in(&stack, &Browser::new(), &req, "jean").await;
    let (status, tokens) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let mut proofs = 0;
    for _ in 0..100 {
        proofs = stack.sql("trace", "SELECT count(*) FROM connections").await[0].get::<_, i64>(0);
        if proofs > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(proofs > 0, "no connection reached the proof store");

    // Each service's connections are its role's, and the roles are plain logins.
    let admin = connect(stack.db().url()).await;
    let sessions = admin
        .query(
            "SELECT DISTINCT application_name, usename::text FROM pg_stat_activity
              WHERE datname = current_database() AND application_name LIKE 'relais-%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(sessions.len(), SCHEMAS.len(), "one role per service");
    for row in sessions {
        let (app, user): (String, String) = (row.get(0), row.get(1));
        let schema = app.trim_start_matches("relais-");
        assert_eq!(user, role_of(&stack, schema), "{app}");
    }
    for schema in SCHEMAS {
        let row = admin
            .query_one(
                "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication,
                        rolbypassrls
                   FROM pg_roles WHERE rolname = $1",
                &[&role_of(&stack, schema)],
            )
            .await
            .unwrap();
        let flags: Vec<bool> = (0..6).map(|i| row.get(i)).collect();
        assert_eq!(flags, [true, false, false, false, false, false], "{schema}");
    }
    owned_by_their_roles(&stack).await;

    // PostgreSQL refuses every role the other services' tables, and new schemas or tables
    // outside its own.
    refused(&stack, "oidc_front", "SELECT * FROM registry.people").await;
    refused(&stack, "oidc_front", "SELECT * FROM trace.events").await;
    refused(&stack, "support", "SELECT * FROM oidc_front.accounts").await;
    refused(
        &stack,
        "registry",
        "INSERT INTO trace.events DEFAULT VALUES",
    )
    .await;
    refused(&stack, "trace", "SELECT * FROM support.tickets").await;
    refused(&stack, "trace", "SELECT * FROM registry.outbox").await;
    refused(&stack, "registry", "CREATE TABLE public.stash (x int)").await;
    refused(&stack, "registry", "CREATE SCHEMA stash").await;
    // Its own schema it reads.
    let own = connect(&stack.db().url_as(&role_of(&stack, "registry"))).await;
    own.batch_execute("SELECT count(*) FROM registry.people")
        .await
        .unwrap();

    // Run again (an upgrade), it changes nothing that works.
    let (ok, out) = db_roles(stack.config(), stack.db().url()).await;
    assert!(ok, "{out}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_of_one_shared_role_moves_to_a_role_per_service() {
    // Schemas and tables made by the one superuser of an earlier release.
    let stack = Stack::start().await;
    let mut config = stack.config().clone();
    config.database.url = Secret::new(stack.db().role_url());
    let (ok, out) = db_roles(&config, stack.db().url()).await;
    assert!(ok, "{out}");
    assert!(out.contains("existing objects"), "{out}");
    owned_by_their_roles(&stack).await;

    // The services start under their roles on the tables they now own (migrations
    // checked, the seed written again).
    for s in [
        &mut config.registry.listen,
        &mut config.trace.listen,
        &mut config.support.listen,
        &mut config.oidc_front.listen,
        &mut config.idp_bridge.listen,
    ] {
        *s = "127.0.0.1:0".into();
    }
    let services = [
        Service::Registry,
        Service::Trace,
        Service::IdpBridge,
        Service::OidcFront,
        Service::Support,
    ];
    let hub = relais::start(config, &services, relais_runtime::Shutdown::new())
        .await
        .unwrap();
    hub.stop(Duration::from_secs(5)).await;
    refused(&stack, "oidc_front", "SELECT * FROM registry.people").await;
    stack.stop().await;
}

#[tokio::test]
async fn check_config_names_clear_links_to_a_database_or_broker_off_this_machine() {
    let run = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_relais"));
        // Defaults and these variables only, every other check satisfied on loopback.
        cmd.arg("check-config")
            .env_remove("RELAIS_CONFIG")
            .env("RELAIS__GATEWAY__ALLOW_PLAIN_HTTP", "true")
            .env("RELAIS__GRPC__INSECURE_PLAINTEXT", "true");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = run(&[]);
    assert!(ok, "{err}");
    let remote_db = (
        "RELAIS__DATABASE__URL",
        "postgres://relais_{service}@db.example/relais",
    );
    let (ok, err) = run(&[remote_db]);
    assert!(!ok && err.contains("database.sslmode"), "{err}");
    let (ok, err) = run(&[remote_db, ("RELAIS__DATABASE__SSLMODE", "verify-full")]);
    assert!(!ok && err.contains("database.ca_file"), "{err}");
    let (ok, err) = run(&[
        remote_db,
        ("RELAIS__DATABASE__SSLMODE", "verify-full"),
        ("RELAIS__DATABASE__CA_FILE", "/etc/relais/db-ca.pem"),
    ]);
    assert!(ok, "{err}");

    let remote_bus = ("RELAIS__BUS__URL", "amqp://relais:pw@broker.example/%2f");
    let (ok, err) = run(&[remote_bus]);
    assert!(!ok && err.contains("bus.url"), "{err}");
    let (ok, err) = run(&[remote_bus, ("RELAIS__BUS__INSECURE_PLAINTEXT", "true")]);
    assert!(ok, "{err}");
    let missing = "/nonexistent/relais/broker-ca.pem";
    let (ok, err) = run(&[
        ("RELAIS__BUS__URL", "amqps://relais:pw@broker.example/%2f"),
        ("RELAIS__BUS__CA_FILE", missing),
    ]);
    assert!(
        !ok && err.contains("bus.ca_file") && err.contains(missing),
        "{err}"
    );
}
