//! Retention: records received longer ago than `trace.retention_months` are purged, the log
//! staying verifiable. The cut is the last record of the log's oldest part all received
//! before the limit (`received_at`: the store's own clock at the append, in the log's
//! order; `occurred_at` is the sender's, and one late or replayed event would pull the cut
//! over younger records). Before anything is deleted a checkpoint is signed at the cut (its
//! root is computed from the stored hashes) and the purge is appended to the log
//! (`trace.purged`) with its row in `purges`, in one transaction. Then the records up to the
//! cut go in chunks, each its own short transaction that never locks the tree's head, and
//! with them the summaries of the connections that have no record left; a connection
//! straddling the cut has its summary rebuilt from the records it keeps, which stay legal
//! evidence and must stay findable. Every stored tree hash is kept (none is personal): proofs
//! above the cut are served as before, and `VerifyChain` verifies from the cut's checkpoint.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::{GenericClient, Transaction};
use relais_bus::Event;
use relais_bus::events::ConnectionEvent;
use relais_proto::trace::v1 as pb;
use relais_runtime::Prepared;
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime};

use crate::log::{self, Log, hash_of, int, uint};
use crate::{TraceError, store, tree};

/// The kind of a purge's own record.
pub const PURGED: &str = "trace.purged";
/// The error code of a proof asked for a purged record.
pub const RECORD_PURGED: &str = "record_purged";
/// A chunk that lost a deadlock against ingest (both locking summaries) is tried again.
const CHUNK_ATTEMPTS: u32 = 5;

/// The seq up to which records were purged (or are being): 0 when none ever was.
pub(crate) async fn purged_up_to(client: &impl GenericClient) -> Result<i64, TraceError> {
    Ok(client
        .one("SELECT coalesce(max(cut), 0) FROM purges", &[])
        .await?
        .try_get(0)?)
}

/// `months` calendar months before `now`, the day clamped to the month's length.
pub fn months_before(now: OffsetDateTime, months: u32) -> Result<OffsetDateTime, TraceError> {
    let total = i64::from(now.year()) * 12 + i64::from(u8::from(now.month())) - 1;
    let total = total - i64::from(months);
    let out_of_range = || TraceError::BadRequest(format!("{months} months is out of range"));
    let year = i32::try_from(total.div_euclid(12)).map_err(|_| out_of_range())?;
    let month = u8::try_from(total.rem_euclid(12) + 1).map_err(|_| out_of_range())?;
    let month = Month::try_from(month).map_err(|_| out_of_range())?;
    let day = now.day().min(month.length(year));
    let date = Date::from_calendar_date(year, month, day).map_err(|_| out_of_range())?;
    Ok(now.replace_date(date))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// What a purge removed (or would).
#[derive(Default)]
struct Removed {
    records: u64,
    connections_removed: u64,
    connections_rebuilt: u64,
}

/// The retention's purge of the log.
#[derive(Clone)]
pub struct Retention {
    log: Log,
    months: u32,
    batch: i64,
}

impl Retention {
    pub fn new(log: Log, months: u32, batch: u32) -> Self {
        Retention {
            log,
            months,
            batch: i64::from(batch.max(1)),
        }
    }

    /// Purges what is past the retention now; see the module's comment. A purge left
    /// unfinished (the process stopped) is finished first, with its own cut and record.
    pub async fn purge(&self, dry_run: bool) -> Result<pb::PurgeResponse, TraceError> {
        let older_than = months_before(OffsetDateTime::now_utc(), self.months)?;
        let mut removed = Removed::default();
        // Twice at most: another purge (a replica's, the schedule's) may start first.
        for _ in 0..3 {
            let client = self.log.pool().get().await?;
            if !dry_run
                && let Some(row) = client
                    .opt(
                        "SELECT cut FROM purges WHERE finished_at IS NULL ORDER BY cut LIMIT 1",
                        &[],
                    )
                    .await?
            {
                self.finish(row.try_get(0)?, &mut removed).await?;
                continue;
            }
            let done = purged_up_to(&client).await?;
            let cut = cut(&client, done, older_than).await?;
            let mut answer = pb::PurgeResponse {
                dry_run,
                purged_up_to_seq: done,
                checkpoint_size: uint(done)?,
                retention_months: self.months,
                older_than: rfc3339(older_than),
                ..pb::PurgeResponse::default()
            };
            if cut <= done {
                if done > 0 {
                    answer.checkpoint_root = checkpoint_root(&client, done).await?;
                }
                answer.records = removed.records;
                answer.connections_removed = removed.connections_removed;
                answer.connections_rebuilt = removed.connections_rebuilt;
                return Ok(answer);
            }
            let planned = plan(&client, done, cut).await?;
            let root = log::compute(&client, &tree::root_of(uint(cut)?)).await?;
            answer.purged_up_to_seq = cut;
            answer.checkpoint_size = uint(cut)?;
            answer.checkpoint_root = root.0.to_vec();
            if dry_run {
                answer.records = planned.records;
                answer.connections_removed = planned.connections_removed;
                answer.connections_rebuilt = planned.connections_rebuilt;
                return Ok(answer);
            }
            // The cut's checkpoint first: the record below names it, and the log is
            // verified from it once the records under it are gone.
            self.log.sign_checkpoint(&client, cut, root).await?;
            let event = Event::new(
                PURGED,
                "trace",
                serde_json::json!({
                    "cut_seq": cut,
                    "previous_cut_seq": done,
                    "checkpoint_size": cut,
                    "checkpoint_root": root.to_string(),
                    "records": planned.records,
                    "connections_removed": planned.connections_removed,
                    "connections_rebuilt": planned.connections_rebuilt,
                    "retention_months": self.months,
                    "older_than": rfc3339(older_than),
                }),
            );
            if !self.record(&event, cut, older_than).await? {
                continue;
            }
            self.finish(cut, &mut removed).await?;
            answer.records = removed.records;
            answer.connections_removed = removed.connections_removed;
            answer.connections_rebuilt = removed.connections_rebuilt;
            answer.purge_event_id = event.id.to_string();
            return Ok(answer);
        }
        Err(TraceError::Precondition(
            "other purges kept starting first: try again".into(),
        ))
    }

    /// Appends the purge's record and writes its row, at once; false when another purge
    /// got there first (its row is then the one to finish).
    async fn record(
        &self,
        event: &Event,
        cut: i64,
        older_than: OffsetDateTime,
    ) -> Result<bool, TraceError> {
        let mut client = self.log.pool().get().await?;
        let tx = client.transaction().await?;
        // The head's lock serialises purges' records as it does appends.
        let frontier = log::lock(&tx).await?;
        let other = tx
            .opt(
                "SELECT cut FROM purges WHERE finished_at IS NULL OR cut >= $1 LIMIT 1",
                &[&cut],
            )
            .await?;
        if other.is_some() {
            return Ok(false);
        }
        store::append_locked(&tx, frontier, &[event]).await?;
        tx.run(
            "INSERT INTO purges (cut, event_id, older_than) VALUES ($1, $2, $3)",
            &[&cut, &event.id, &older_than],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes the records up to `cut` a chunk at a time, then marks the purge finished.
    async fn finish(&self, cut: i64, removed: &mut Removed) -> Result<(), TraceError> {
        let client = self.log.pool().get().await?;
        let first: Option<i64> = client
            .one("SELECT min(seq) FROM events WHERE seq <= $1", &[&cut])
            .await?
            .try_get(0)?;
        drop(client);
        let mut low = first.map_or(cut, |f| f - 1);
        let mut done = Removed::default();
        while low < cut {
            let high = cut.min(low.saturating_add(self.batch));
            let mut attempt = 1;
            loop {
                match self.chunk(low, high, cut).await {
                    Ok(r) => {
                        done.records += r.records;
                        done.connections_removed += r.connections_removed;
                        done.connections_rebuilt += r.connections_rebuilt;
                        break;
                    }
                    Err(e) if attempt < CHUNK_ATTEMPTS => {
                        tracing::warn!(error = %e, low, high, "purge chunk failed; again");
                        attempt += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
            low = high;
        }
        let client = self.log.pool().get().await?;
        client
            .run(
                "UPDATE purges SET finished_at = now(), records = records + $2, \
                 connections_removed = connections_removed + $3, \
                 connections_rebuilt = connections_rebuilt + $4 WHERE cut = $1",
                &[
                    &cut,
                    &int(done.records)?,
                    &int(done.connections_removed)?,
                    &int(done.connections_rebuilt)?,
                ],
            )
            .await?;
        tracing::info!(
            cut,
            records = done.records,
            connections_removed = done.connections_removed,
            connections_rebuilt = done.connections_rebuilt,
            "records past the retention purged"
        );
        removed.records += done.records;
        removed.connections_removed += done.connections_removed;
        removed.connections_rebuilt += done.connections_rebuilt;
        Ok(())
    }

    /// One chunk, `(low, high]`, in one transaction: its records, then the summaries of
    /// its connections, each deleted when no record of it is left and rebuilt when only
    /// records above the cut are (those with records in a later chunk wait for it).
    async fn chunk(&self, low: i64, high: i64, cut: i64) -> Result<Removed, TraceError> {
        let mut client = self.log.pool().get().await?;
        let tx = client.transaction().await?;
        let rows = tx
            .all(
                "DELETE FROM events WHERE seq > $1 AND seq <= $2 RETURNING connection_id",
                &[&low, &high],
            )
            .await?;
        let mut removed = Removed {
            records: u64::try_from(rows.len()).unwrap_or(u64::MAX),
            ..Removed::default()
        };
        let mut ids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<_, Option<String>>(0))
            .collect::<Result<HashSet<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        ids.sort();
        if !ids.is_empty() {
            // Locked first, in one order: an append folding into one of them waits, and
            // its record is then seen by the reads below.
            tx.all(
                "SELECT connection_id FROM connections WHERE connection_id = ANY($1) \
                 ORDER BY connection_id FOR UPDATE",
                &[&ids],
            )
            .await?;
            let left: HashMap<String, i64> = tx
                .all(
                    "SELECT connection_id, min(seq) FROM events WHERE connection_id = ANY($1) \
                     GROUP BY connection_id",
                    &[&ids],
                )
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, TraceError>>()?;
            let gone: Vec<&str> = ids
                .iter()
                .filter(|id| !left.contains_key(*id))
                .map(String::as_str)
                .collect();
            let straddling: Vec<&str> = ids
                .iter()
                .filter(|id| left.get(*id).is_some_and(|min| *min > cut))
                .map(String::as_str)
                .collect();
            if !gone.is_empty() {
                removed.connections_removed = tx
                    .execute(
                        "DELETE FROM connections WHERE connection_id = ANY($1)",
                        &[&gone],
                    )
                    .await?;
            }
            if !straddling.is_empty() {
                removed.connections_rebuilt = rebuild(&tx, &straddling).await?;
            }
        }
        tx.commit().await?;
        Ok(removed)
    }
}

/// The summaries of `ids` made again from their records left, in the log's order.
async fn rebuild(tx: &Transaction<'_>, ids: &[&str]) -> Result<u64, TraceError> {
    let events: Vec<Event> = tx
        .all(
            "SELECT body FROM events WHERE connection_id = ANY($1) ORDER BY seq",
            &[&ids],
        )
        .await?
        .iter()
        .map(|r| {
            let body: String = r.try_get(0)?;
            serde_json::from_str(&body).map_err(|e| TraceError::Invalid(e.to_string()))
        })
        .collect::<Result<_, TraceError>>()?;
    let steps: Vec<Option<ConnectionEvent>> = events
        .iter()
        .map(|e| e.payload::<ConnectionEvent>().ok())
        .collect();
    let refs: Vec<&Event> = events.iter().collect();
    let rebuilt = tx
        .execute(
            "DELETE FROM connections WHERE connection_id = ANY($1)",
            &[&ids],
        )
        .await?;
    store::fold(tx, &store::fold_all(&refs, &steps)).await?;
    Ok(rebuilt)
}

/// The cut: the last record before the first one received at or after `older_than`
/// (above `done`, the last cut), or the log's last record when all are older.
async fn cut(
    client: &impl GenericClient,
    done: i64,
    older_than: OffsetDateTime,
) -> Result<i64, TraceError> {
    // In seq order from the last cut: what is read is what will be deleted, no more.
    let first_kept: Option<i64> = client
        .opt(
            "SELECT seq FROM events WHERE seq > $1 AND received_at >= $2 ORDER BY seq LIMIT 1",
            &[&done, &older_than],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    match first_kept {
        Some(seq) => Ok(seq - 1),
        None => Ok(client
            .one(
                "SELECT coalesce(max(seq), $1) FROM events WHERE seq > $1",
                &[&done],
            )
            .await?
            .try_get(0)?),
    }
}

/// What purging `(done, cut]` would remove, as the records stand now (ingest meanwhile may
/// give an old connection a new record: its summary is then rebuilt, not removed).
async fn plan(client: &impl GenericClient, done: i64, cut: i64) -> Result<Removed, TraceError> {
    let records: i64 = client
        .one(
            "SELECT count(*) FROM events WHERE seq > $1 AND seq <= $2",
            &[&done, &cut],
        )
        .await?
        .try_get(0)?;
    let row = client
        .one(
            "WITH old AS (SELECT DISTINCT connection_id FROM events \
             WHERE seq > $1 AND seq <= $2 AND connection_id IS NOT NULL), \
             kept AS (SELECT old.connection_id, EXISTS (SELECT 1 FROM events e \
             WHERE e.connection_id = old.connection_id AND e.seq > $2) AS above FROM old) \
             SELECT count(*) FILTER (WHERE NOT above), count(*) FILTER (WHERE above) FROM kept",
            &[&done, &cut],
        )
        .await?;
    Ok(Removed {
        records: uint(records)?,
        connections_removed: uint(row.try_get(0)?)?,
        connections_rebuilt: uint(row.try_get(1)?)?,
    })
}

async fn checkpoint_root(client: &impl GenericClient, size: i64) -> Result<Vec<u8>, TraceError> {
    let row = client
        .opt("SELECT root FROM checkpoints WHERE size = $1", &[&size])
        .await?
        .ok_or(TraceError::Missing("checkpoint at the purge's cut"))?;
    Ok(hash_of(&row.try_get::<_, Vec<u8>>(0)?)?.0.to_vec())
}
