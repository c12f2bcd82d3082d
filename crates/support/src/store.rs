//! SQL of the support schema. Tickets are read and written inside the caller's
//! transaction, so that a change, its history and its events commit together.

use deadpool_postgres::{GenericClient, Pool, Transaction};
use jiff::Timestamp;
use relais_bus::Outbox;
use relais_runtime::Prepared;
use sha2::{Digest, Sha256};
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::SupportError;
use crate::domain::indicator::Incident;
use crate::domain::ticket::{HistoryEntry, Status, Ticket};
use crate::domain::{Actor, PartnerKind, PartnerRef, Scope, Severity};

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    outbox: Outbox,
}

/// Which tickets to list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub partner: Option<PartnerRef>,
    pub status: Option<Status>,
    pub limit: i64,
}

fn kind_parse(s: &str) -> Result<PartnerKind, SupportError> {
    PartnerKind::parse(s).ok_or_else(|| SupportError::Database(format!("unknown partner kind {s}")))
}

impl Store {
    pub fn new(pool: Pool, outbox: Outbox) -> Self {
        Store { pool, outbox }
    }

    /// Commits a transaction that may have queued events, waking the relay.
    pub async fn commit(&self, tx: Transaction<'_>) -> Result<(), SupportError> {
        Ok(self.outbox.commit(tx).await?)
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Stores a new ticket with its history.
    pub async fn insert(
        &self,
        client: &impl GenericClient,
        ticket: &Ticket,
        next_due: Option<Timestamp>,
    ) -> Result<(), SupportError> {
        client
            .run(
                "INSERT INTO tickets (id, partner_kind, partner_id, status, severity, scope, \
                 opened_at, resolved_at, next_due_at, state) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &ticket.id,
                    &ticket.partner.kind.as_str(),
                    &ticket.partner.id,
                    &ticket.status.as_str(),
                    &i16::from(ticket.severity.level()),
                    &ticket.scope.as_str(),
                    &ticket.opened_at,
                    &ticket.resolved_at,
                    &next_due,
                    &Json(state_of(ticket)),
                ],
            )
            .await?;
        append_history(client, ticket.id, &ticket.history, 0).await
    }

    /// Reads a ticket and locks it until the transaction ends.
    pub async fn lock(
        &self,
        client: &impl GenericClient,
        id: Uuid,
    ) -> Result<Ticket, SupportError> {
        let row = client
            .opt("SELECT state FROM tickets WHERE id = $1 FOR UPDATE", &[&id])
            .await?
            .ok_or(SupportError::NotFound)?;
        let Json(mut ticket): Json<Ticket> = row.try_get(0)?;
        ticket.history = history(client, id).await?;
        Ok(ticket)
    }

    /// Writes a changed ticket; history entries from `known` on are new.
    pub async fn update(
        &self,
        client: &impl GenericClient,
        ticket: &Ticket,
        known: usize,
        next_due: Option<Timestamp>,
    ) -> Result<(), SupportError> {
        client
            .run(
                "UPDATE tickets SET status = $2, severity = $3, scope = $4, resolved_at = $5, \
                 next_due_at = $6, state = $7, updated_at = now() WHERE id = $1",
                &[
                    &ticket.id,
                    &ticket.status.as_str(),
                    &i16::from(ticket.severity.level()),
                    &ticket.scope.as_str(),
                    &ticket.resolved_at,
                    &next_due,
                    &Json(state_of(ticket)),
                ],
            )
            .await?;
        append_history(client, ticket.id, &ticket.history[known..], known).await
    }

    pub async fn get(&self, id: Uuid) -> Result<Ticket, SupportError> {
        let client = self.pool.get().await?;
        let row = client
            .opt("SELECT state FROM tickets WHERE id = $1", &[&id])
            .await?
            .ok_or(SupportError::NotFound)?;
        let Json(mut ticket): Json<Ticket> = row.try_get(0)?;
        ticket.history = history(&client, id).await?;
        Ok(ticket)
    }

    /// Tickets without their histories, the most recent first.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Ticket>, SupportError> {
        let client = self.pool.get().await?;
        let kind = filter.partner.as_ref().map(|p| p.kind.as_str());
        let id = filter.partner.as_ref().map(|p| p.id.as_str());
        let status = filter.status.map(Status::as_str);
        let rows = client
            .all(
                "SELECT state FROM tickets \
                 WHERE ($1::text IS NULL OR (partner_kind = $1 AND partner_id = $2)) \
                 AND ($3::text IS NULL OR status = $3) \
                 ORDER BY opened_at DESC, id LIMIT $4",
                &[&kind, &id, &status, &filter.limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let Json(ticket): Json<Ticket> = r.try_get(0)?;
                Ok(ticket)
            })
            .collect()
    }

    /// Tickets whose next deadline is at or before `now`, the most overdue first.
    pub async fn due(&self, now: Timestamp, limit: i64) -> Result<Vec<Uuid>, SupportError> {
        let client = self.pool.get().await?;
        let rows = client
            .all(
                "SELECT id FROM tickets WHERE next_due_at <= $1 ORDER BY next_due_at LIMIT $2",
                &[&now, &limit],
            )
            .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(SupportError::from))
            .collect()
    }

    /// How many tickets are in each status (those with none are absent).
    pub async fn count_by_status(&self) -> Result<Vec<(String, i64)>, SupportError> {
        let client = self.pool.get().await?;
        let rows = client
            .all("SELECT status, count(*) FROM tickets GROUP BY status", &[])
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Operating incidents (severity 1–4, not information requests) received in
    /// `[from, to)`.
    pub async fn incidents(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Incident>, SupportError> {
        let client = self.pool.get().await?;
        let rows = client
            .all(
                "SELECT partner_kind, partner_id, opened_at, resolved_at FROM tickets \
                 WHERE opened_at >= $1 AND opened_at < $2 AND severity < $3 AND scope <> $4",
                &[
                    &from,
                    &to,
                    &i16::from(Severity::INFO.level()),
                    &Scope::InformationRequest.as_str(),
                ],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get(0)?;
                Ok(Incident {
                    partner: PartnerRef {
                        kind: kind_parse(&kind)?,
                        id: r.try_get(1)?,
                    },
                    received_at: r.try_get(2)?,
                    resolved_at: r.try_get(3)?,
                })
            })
            .collect()
    }
}

/// The ticket as stored in `state`: its history lives in its own table.
fn state_of(ticket: &Ticket) -> Ticket {
    Ticket {
        history: Vec::new(),
        ..ticket.clone()
    }
}

async fn append_history(
    client: &impl GenericClient,
    id: Uuid,
    entries: &[HistoryEntry],
    first_seq: usize,
) -> Result<(), SupportError> {
    let statement = client
        .prepare_cached(
            "INSERT INTO history (ticket_id, seq, at, actor, action) VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    for (i, entry) in entries.iter().enumerate() {
        let seq = i32::try_from(first_seq + i)
            .map_err(|_| SupportError::Invalid("the ticket's history is full".into()))?;
        client
            .execute(
                &statement,
                &[
                    &id,
                    &seq,
                    &entry.at,
                    &Json(&entry.actor),
                    &Json(&entry.action),
                ],
            )
            .await?;
    }
    Ok(())
}

async fn history(client: &impl GenericClient, id: Uuid) -> Result<Vec<HistoryEntry>, SupportError> {
    let rows = client
        .all(
            "SELECT at, actor, action FROM history WHERE ticket_id = $1 ORDER BY seq",
            &[&id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let Json(actor): Json<Actor> = r.try_get(1)?;
            let Json(action) = r.try_get(2)?;
            Ok(HistoryEntry {
                at: r.try_get(0)?,
                actor,
                action,
            })
        })
        .collect()
}

/// A message kept aside.
#[derive(Clone, Debug)]
pub struct Quarantined {
    pub id: Uuid,
    pub received_at: Timestamp,
    pub sender: Option<String>,
    pub reason: String,
    pub size: usize,
}

impl Store {
    /// The ticket a known Message-ID belongs to.
    pub async fn mail_ticket(
        &self,
        client: &impl GenericClient,
        message_ids: &[String],
    ) -> Result<Option<Uuid>, SupportError> {
        let row = client
            .opt(
                "SELECT ticket_id FROM mail_messages WHERE message_id = ANY($1) \
                 ORDER BY array_position($1, message_id) LIMIT 1",
                &[&message_ids],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub async fn record_mail(
        &self,
        client: &impl GenericClient,
        message_id: &str,
        ticket: Uuid,
        at: Timestamp,
    ) -> Result<(), SupportError> {
        client
            .run(
                "INSERT INTO mail_messages (message_id, ticket_id, received_at) VALUES ($1, $2, $3)",
                &[&message_id, &ticket, &at],
            )
            .await?;
        Ok(())
    }

    /// Keeps `raw` aside with the reason; a message already kept aside keeps its row.
    pub async fn quarantine(
        &self,
        at: Timestamp,
        sender: Option<&str>,
        reason: &str,
        raw: &[u8],
    ) -> Result<Uuid, SupportError> {
        let digest = Sha256::digest(raw).to_vec();
        let client = self.pool.get().await?;
        let inserted = client
            .opt(
                "INSERT INTO mail_quarantine (id, received_at, sender, reason, raw, digest) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (digest) DO NOTHING RETURNING id",
                &[&Uuid::new_v4(), &at, &sender, &reason, &raw, &digest],
            )
            .await?;
        let row = match inserted {
            Some(row) => row,
            // Kept aside before: the same message, the same row.
            None => {
                client
                    .one(
                        "SELECT id FROM mail_quarantine WHERE digest = $1",
                        &[&digest],
                    )
                    .await?
            }
        };
        Ok(row.try_get(0)?)
    }

    /// Messages kept aside, the most recent first.
    pub async fn quarantined(&self, limit: i64) -> Result<Vec<Quarantined>, SupportError> {
        let rows = self
            .pool
            .get()
            .await?
            .all(
                "SELECT id, received_at, sender, reason, length(raw) FROM mail_quarantine \
                 ORDER BY received_at DESC, id LIMIT $1",
                &[&limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let size: i32 = r.try_get(4)?;
                Ok(Quarantined {
                    id: r.try_get(0)?,
                    received_at: r.try_get(1)?,
                    sender: r.try_get(2)?,
                    reason: r.try_get(3)?,
                    size: usize::try_from(size).unwrap_or_default(),
                })
            })
            .collect()
    }
}

/// The subject of ticket `id`, if it exists.
pub async fn ticket_subject(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<String>, SupportError> {
    let row = client
        .opt(
            "SELECT state->>'subject' FROM tickets WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Threads a message the service sent on `ticket`, so replies to it find the ticket.
pub async fn record_outbound(
    client: &impl GenericClient,
    message_id: &str,
    ticket: Uuid,
    at: Timestamp,
) -> Result<(), SupportError> {
    client
        .run(
            "INSERT INTO mail_messages (message_id, ticket_id, received_at) VALUES ($1, $2, $3) \
             ON CONFLICT (message_id) DO NOTHING",
            &[&message_id, &ticket, &at],
        )
        .await?;
    Ok(())
}
