//! The bus's tables, in the calling service's schema: the outbox and the inbox.

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;
use tokio_postgres::types::Json;

use crate::{BusError, Event};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Refinery history table of the bus, apart from the service's own `refinery_schema_history`.
pub const MIGRATION_TABLE: &str = "bus_schema_history";

/// Creates (or brings up to date) the `outbox` and `inbox` tables in the client's current
/// schema. A deadpool `Object` can be passed as `&mut obj`.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), BusError> {
    embedded::migrations::runner()
        .set_migration_table_name(MIGRATION_TABLE)
        .run_async(client)
        .await?;
    Ok(())
}

/// The outbox columns of `events`, as arrays for `unnest`.
fn columns(events: &[Event]) -> (Vec<uuid::Uuid>, Vec<&str>, Vec<Json<&Event>>) {
    (
        events.iter().map(|e| e.id).collect(),
        events.iter().map(|e| e.kind.as_str()).collect(),
        events.iter().map(Json).collect(),
    )
}

/// Queues `event` in the outbox, inside the caller's transaction: the change and the event
/// it reports commit, or vanish, together. Commit through [`crate::Outbox::commit`] to
/// have the event relayed at once.
pub async fn enqueue(client: &impl GenericClient, event: &Event) -> Result<(), BusError> {
    enqueue_all(client, std::slice::from_ref(event)).await
}

/// Queues `events`, in this order, in one statement.
pub async fn enqueue_all(client: &impl GenericClient, events: &[Event]) -> Result<(), BusError> {
    if events.is_empty() {
        return Ok(());
    }
    let statement = client
        .prepare_cached(
            "INSERT INTO outbox (id, kind, body) \
             SELECT id, kind, body FROM unnest($1::uuid[], $2::text[], $3::jsonb[]) \
             WITH ORDINALITY AS e (id, kind, body, n) ORDER BY n",
        )
        .await?;
    let (ids, kinds, bodies) = columns(events);
    client.execute(&statement, &[&ids, &kinds, &bodies]).await?;
    Ok(())
}

/// The placeholders of the event columns after `n` parameters, for [`statement_with_events`].
fn event_placeholders(n: usize) -> String {
    format!(
        "unnest(${}::uuid[], ${}::text[], ${}::jsonb[]) WITH ORDINALITY AS e (id, kind, body, n)",
        n + 1,
        n + 2,
        n + 3
    )
}

/// Runs `sql` with `params` followed by the columns of `events`.
async fn statement_with_events(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    events: &[Event],
) -> Result<Vec<tokio_postgres::Row>, BusError> {
    let statement = client.prepare_cached(sql).await?;
    let (ids, kinds, bodies) = columns(events);
    let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.to_vec();
    all.extend([
        &ids as &(dyn tokio_postgres::types::ToSql + Sync),
        &kinds,
        &bodies,
    ]);
    Ok(client.query(&statement, &all).await?)
}

/// Runs `change` (one INSERT whose parameters are `$1`…`$n`) and queues `events` in the
/// same statement: atomic without a transaction, one round trip instead of four. The
/// events are queued whatever the number of rows changed, so an UPDATE that may touch
/// none belongs in [`change_if_with_events`] instead. Wake the relay afterwards
/// ([`crate::Outbox::wake`]).
pub async fn change_with_events(
    client: &impl GenericClient,
    change: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    events: &[Event],
) -> Result<(), BusError> {
    let sql = format!(
        "WITH change AS ({change}) INSERT INTO outbox (id, kind, body) \
         SELECT id, kind, body FROM {} ORDER BY n",
        event_placeholders(params.len())
    );
    statement_with_events(client, &sql, params, events).await?;
    Ok(())
}

/// Runs data-modifying CTEs (`ctes`, the last one named `change` with a RETURNING
/// clause; parameters `$1`…`$n`) and queues `events` in the same statement only if
/// `change` returned a row: a change that may touch nothing, and its events, atomic
/// without a transaction. Returns the rows `change` returned. Wake the relay afterwards.
pub async fn change_if_with_events(
    client: &impl GenericClient,
    ctes: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    events: &[Event],
) -> Result<u64, BusError> {
    let sql = format!(
        "WITH {ctes}, queued AS (INSERT INTO outbox (id, kind, body) \
         SELECT id, kind, body FROM {} WHERE EXISTS (SELECT 1 FROM change) \
         ORDER BY n RETURNING 1) SELECT count(*) FROM change",
        event_placeholders(params.len())
    );
    let rows = statement_with_events(client, &sql, params, events).await?;
    let count: i64 = match rows.first() {
        Some(row) => row.try_get(0)?,
        None => 0,
    };
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Like [`change_if_with_events`], for events whose payload needs what the statement
/// found: `change` (the last of `ctes`, one row or none) returns a jsonb column `fill`
/// whose fields are set in each event's payload (replacing what the caller put there)
/// before it is queued. Returns `change`'s row, if any: the change and its events were
/// written; none, and nothing was queued.
pub async fn change_with_filled_events(
    client: &impl GenericClient,
    ctes: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    events: &[Event],
) -> Result<Option<tokio_postgres::Row>, BusError> {
    let sql = format!(
        "WITH {ctes}, queued AS (INSERT INTO outbox (id, kind, body) \
         SELECT e.id, e.kind, jsonb_set(e.body, '{{payload}}', (e.body -> 'payload') || c.fill) \
         FROM {} CROSS JOIN change c ORDER BY n RETURNING 1) SELECT * FROM change",
        event_placeholders(params.len())
    );
    // Two rows would queue each event twice: the outbox's unique id refuses the statement.
    let rows = statement_with_events(client, &sql, params, events).await?;
    Ok(rows.into_iter().next())
}

/// Events waiting in the outbox: the relay's lag, worth a gauge.
pub async fn outbox_depth(client: &impl GenericClient) -> Result<i64, BusError> {
    let row = client.query_one("SELECT count(*) FROM outbox", &[]).await?;
    Ok(row.try_get(0)?)
}

/// Forgets inbox entries processed before `before`; returns how many. A redelivery older
/// than that would be handled again, so keep well beyond any broker retention.
pub async fn purge_inbox(
    client: &impl GenericClient,
    before: OffsetDateTime,
) -> Result<u64, BusError> {
    Ok(client
        .execute("DELETE FROM inbox WHERE processed_at < $1", &[&before])
        .await?)
}
