//! Least privilege in PostgreSQL: one login role per service, owning its own schema and
//! granted nothing else. Run once per deployment (and again after an upgrade) by
//! `relais admin db-roles` over an administrative connection; the services then connect
//! as their roles and apply their own migrations.

use relais_config::{DatabaseConfig, SERVICE_PLACEHOLDER};

use crate::RuntimeError;

fn db_error(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Database(e.to_string())
}

/// `"name"`, for an identifier that cannot be a bind parameter.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` (standard_conforming_strings, PostgreSQL's default since 9.1).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The role and password `schema`'s service connects with, and its database.
fn service_login(
    db: &DatabaseConfig,
    schema: &str,
) -> Result<(String, Option<String>, String), RuntimeError> {
    let (pg, _) = crate::pg_connection(db, db.url_for(schema).expose())?;
    let role = pg
        .get_user()
        .ok_or_else(|| db_error("database.url names no user"))?
        .to_string();
    let password = match db.password_file_for(schema) {
        Some(file) => Some(
            std::fs::read_to_string(&file)
                .map_err(|e| db_error(format!("database.password_file {file}: {e}")))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        ),
        None => pg
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    };
    let database = pg.get_dbname().unwrap_or(&role).to_string();
    Ok((role, password, database))
}

/// Creates or updates each schema's role (LOGIN; no superuser, database or role creation,
/// replication or row-security bypass), gives it its schema and every object already in
/// it (a deployment upgraded from one shared role), the right to connect, and nothing on
/// the other schemas; takes CREATE on `public` and every right on the database from
/// PUBLIC. Idempotent. Returns what it did, a line per role.
pub async fn provision_roles(
    db: &DatabaseConfig,
    schemas: &[&str],
) -> Result<Vec<String>, RuntimeError> {
    if !db.has_service_roles() {
        return Err(db_error(format!(
            "database.url has no {SERVICE_PLACEHOLDER} in its user: every service would share \
             one role (e.g. postgres://relais_{SERVICE_PLACEHOLDER}@host/relais)"
        )));
    }
    if db.admin_url.is_empty() {
        return Err(db_error(
            "database.admin_url must be set (e.g. RELAIS__DATABASE__ADMIN_URL): a role that \
             may create roles and schemas",
        ));
    }
    let mut logins = Vec::new();
    for schema in schemas {
        logins.push((*schema, service_login(db, schema)?));
    }
    let database = logins
        .first()
        .map(|(_, (_, _, d))| d.clone())
        .ok_or_else(|| db_error("no schema to provision"))?;
    for (schema, (role, _, _)) in &logins {
        if logins
            .iter()
            .any(|(other, (r, _, _))| other != schema && r == role)
        {
            return Err(db_error(format!(
                "database.url gives {schema} the role {role} of another service"
            )));
        }
    }
    let (mut admin, tls) = crate::pg_connection(db, db.admin_url.expose())?;
    // The services' database, whichever the administrative URL names.
    admin.dbname(&database);
    let (mut client, connection) = admin.connect(tls).await.map_err(db_error)?;
    let driver = tokio::spawn(connection);
    let done = provision(&mut client, &database, &logins).await;
    drop(client);
    let _ = driver.await;
    done
}

type Login = (String, Option<String>, String);

async fn provision(
    client: &mut tokio_postgres::Client,
    database: &str,
    logins: &[(&str, Login)],
) -> Result<Vec<String>, RuntimeError> {
    let tx = client.transaction().await.map_err(db_error)?;
    let mut report = Vec::new();
    let mut sql = format!(
        "REVOKE ALL ON DATABASE {db} FROM PUBLIC;",
        db = ident(database)
    );
    let public = tx
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = 'public'", &[])
        .await
        .map_err(db_error)?;
    if public.is_some() {
        sql.push_str("REVOKE CREATE ON SCHEMA public FROM PUBLIC;");
    }
    tx.batch_execute(&sql).await.map_err(db_error)?;
    for (schema, (role, password, _)) in logins {
        let r = ident(role);
        let exists = tx
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[role])
            .await
            .map_err(db_error)?
            .is_some();
        let attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS";
        let mut sql = if exists {
            format!("ALTER ROLE {r} {attributes};")
        } else {
            format!("CREATE ROLE {r} {attributes};")
        };
        if let Some(p) = password {
            sql.push_str(&format!("ALTER ROLE {r} PASSWORD {};", literal(p)));
        }
        let s = ident(schema);
        sql.push_str(&format!(
            "GRANT CONNECT ON DATABASE {db} TO {r};
             CREATE SCHEMA IF NOT EXISTS {s} AUTHORIZATION {r};
             ALTER SCHEMA {s} OWNER TO {r};
             REVOKE ALL ON SCHEMA {s} FROM PUBLIC;",
            db = ident(database)
        ));
        tx.batch_execute(&sql).await.map_err(db_error)?;
        let moved = take_over_objects(&tx, schema, role).await?;
        for (other, _) in logins.iter().filter(|(o, _)| o != schema) {
            let o = ident(other);
            let present = tx
                .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[other])
                .await
                .map_err(db_error)?
                .is_some();
            if present {
                tx.batch_execute(&format!(
                    "REVOKE ALL ON ALL TABLES IN SCHEMA {o} FROM {r};
                     REVOKE ALL ON ALL SEQUENCES IN SCHEMA {o} FROM {r};
                     REVOKE ALL ON SCHEMA {o} FROM {r};"
                ))
                .await
                .map_err(db_error)?;
            }
        }
        report.push(format!(
            "role {role}: owns schema {schema}{}; may connect to {database}; nothing on the \
             other schemas{}",
            if moved > 0 {
                format!(" and its {moved} existing objects")
            } else {
                String::new()
            },
            if exists { "" } else { " (created)" },
        ));
    }
    tx.commit().await.map_err(db_error)?;
    Ok(report)
}

/// Gives `role` the tables, views and sequences of `schema` another role owns (a schema
/// the services created as one shared role before), so it can migrate them.
async fn take_over_objects(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    role: &str,
) -> Result<usize, RuntimeError> {
    let mut moved = 0;
    // Tables first: their owned sequences (serial columns) follow them and cannot be
    // given apart.
    for kinds in [&["r", "p", "v", "m", "f"][..], &["S"][..]] {
        let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_string()).collect();
        let rows = tx
            .query(
                "SELECT c.relname, c.relkind::text FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relkind::text = ANY($2)
                    AND pg_get_userbyid(c.relowner) <> $3",
                &[&schema, &kinds, &role],
            )
            .await
            .map_err(db_error)?;
        for row in rows {
            let name: String = row.get(0);
            let kind: String = row.get(1);
            let what = match kind.as_str() {
                "v" => "VIEW",
                "m" => "MATERIALIZED VIEW",
                "S" => "SEQUENCE",
                "f" => "FOREIGN TABLE",
                _ => "TABLE",
            };
            tx.batch_execute(&format!(
                "ALTER {what} {}.{} OWNER TO {}",
                ident(schema),
                ident(&name),
                ident(role)
            ))
            .await
            .map_err(db_error)?;
            moved += 1;
        }
    }
    Ok(moved)
}
