//! SQL of the proof store.

use deadpool_postgres::{Pool, Transaction};
use relais_bus::Event;
use relais_bus::events::{ConnectionEvent, ConnectionStep, Outcome};
use relais_proto::trace::v1 as pb;
use relais_runtime::Prepared;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_postgres::Row;

use crate::TraceError;
use crate::{log, tree};

/// Connections listed when the request sets no limit, and the most it may ask for.
const DEFAULT_LIST_LIMIT: i64 = 100;
const MAX_LIST_LIMIT: u32 = 1000;

#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

/// Steps taken at the browser: their source address is the user's.
fn from_browser(step: ConnectionStep) -> bool {
    matches!(
        step,
        ConnectionStep::AuthorizeInitiated
            | ConnectionStep::ChooserShown
            | ConnectionStep::IdpChosen
            | ConnectionStep::IdpRedirected
            | ConnectionStep::IdpCallback
            | ConnectionStep::IdentityVerified
            | ConnectionStep::CodeIssued
    )
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Appends events to the log, in order, and folds each connection step into its
/// connection. The tree's head is locked once for the whole batch.
pub async fn append(tx: &Transaction<'_>, events: &[&Event]) -> Result<(), TraceError> {
    let frontier = log::lock(tx).await?;
    append_locked(tx, frontier, events).await
}

/// The proof store's own record of what it does (an operator's call, an export, a
/// lookup, a view), appended and committed on its own: callers answer only after it.
pub async fn record(
    client: &mut deadpool_postgres::Client,
    event: &Event,
) -> Result<(), TraceError> {
    let tx = client.transaction().await?;
    append(&tx, &[event]).await?;
    tx.commit().await?;
    Ok(())
}

/// [`append`] for events that may be in the log already (a redelivery): only those it
/// does not hold are appended, each once. Returns how many. The log's unique event id is
/// what makes the consumer idempotent; the head's lock, taken first, means another
/// replica's append of the same event has committed before the check reads.
pub async fn append_new(tx: &Transaction<'_>, events: &[&Event]) -> Result<usize, TraceError> {
    let frontier = log::lock(tx).await?;
    let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id).collect();
    let held: std::collections::HashSet<uuid::Uuid> = tx
        .query(
            "SELECT event_id FROM events WHERE event_id = ANY($1::uuid[])",
            &[&ids],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    let fresh: Vec<&Event> = events
        .iter()
        .filter(|e| !held.contains(&e.id) && seen.insert(e.id))
        .copied()
        .collect();
    if !fresh.is_empty() {
        append_locked(tx, frontier, &fresh).await?;
    }
    Ok(fresh.len())
}

pub(crate) async fn append_locked(
    tx: &Transaction<'_>,
    mut frontier: tree::Frontier,
    events: &[&Event],
) -> Result<(), TraceError> {
    fn invalid(e: impl std::fmt::Display) -> TraceError {
        TraceError::Invalid(e.to_string())
    }
    let mut steps = Vec::with_capacity(events.len());
    let mut bodies = Vec::with_capacity(events.len());
    for event in events {
        bodies.push(serde_json::to_string(event).map_err(invalid)?);
        steps.push(if event.kind.starts_with("connection.") {
            Some(event.payload::<ConnectionEvent>().map_err(invalid)?)
        } else {
            None
        });
    }
    // The lock on the head (taken by the caller) serialises appends: the log has one order.
    let first = i64::try_from(frontier.size()).map_err(invalid)? + 1;
    let leaves: Vec<tree::Hash> = bodies.iter().map(|b| tree::leaf_hash(b)).collect();
    let growth = log::grow(&mut frontier, &leaves)?;
    let seqs: Vec<i64> = (first..).take(events.len()).collect();
    let ids: Vec<_> = events.iter().map(|e| e.id).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let connections: Vec<Option<&str>> = steps
        .iter()
        .map(|s| s.as_ref().map(|s| s.connection_id.as_str()))
        .collect();
    let occurred: Vec<OffsetDateTime> = events.iter().map(|e| e.occurred_at).collect();
    let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
    // Sent together (tokio-postgres pipelines what is awaited at once, in this order):
    // one flight to the server instead of a round trip per statement.
    let insert_params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &seqs,
        &ids,
        &kinds,
        &connections,
        &occurred,
        &sources,
        &bodies,
    ];
    let insert = tx.run(
        "INSERT INTO events (seq, event_id, kind, connection_id, occurred_at, source, body) \
         SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], \
         $5::timestamptz[], $6::text[], $7::text[])",
        &insert_params,
    );
    let tree = log::write(tx, &growth);
    let folded = fold_all(events, &steps);
    let folds = fold(tx, &folded);
    futures::try_join!(
        async { insert.await.map_err(TraceError::from) },
        tree,
        folds
    )?;
    Ok(())
}

/// Where a connection was asked from: the browser's address at `/authorize`, which a
/// record's timeline carries, or else the step's own when the browser took it.
fn browser_address(s: &ConnectionEvent) -> (Option<String>, Option<u16>, bool) {
    if let Some(first) = s
        .timeline
        .iter()
        .find(|t| t.step == ConnectionStep::AuthorizeInitiated)
    {
        return (first.source_ip.clone(), first.source_port, true);
    }
    if from_browser(s.step) {
        (
            s.source_ip.clone(),
            s.source_port,
            s.step == ConnectionStep::AuthorizeInitiated,
        )
    } else {
        (None, None, false)
    }
}

/// The change one batch makes to a connection's summary row: its steps merged in order,
/// so that the batch is one statement that touches each row once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fold {
    connection_id: String,
    started: OffsetDateTime,
    updated: OffsetDateTime,
    source_ip: Option<String>,
    /// The address is the browser's first: it replaces whatever an earlier step left.
    ip_authoritative: bool,
    source_port: Option<i32>,
    port_authoritative: bool,
    sp_id: Option<String>,
    idp_id: Option<String>,
    acr: Option<String>,
    sub_fi: Option<String>,
    sub_fs: Option<String>,
    account_id: Option<String>,
    session_id: Option<String>,
    outcome: ConnectionOutcome,
    error_code: Option<String>,
}

/// Where a connection stands; it only moves forward: in progress < failed/succeeded <
/// logged out, and a late failure (a replayed code) does not undo a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnectionOutcome {
    InProgress,
    Failed,
    Succeeded,
    LoggedOut,
}

impl ConnectionOutcome {
    fn of(s: &ConnectionEvent) -> Self {
        match (s.step, s.outcome) {
            (ConnectionStep::Failed, _) | (_, Outcome::Failure) => Self::Failed,
            (
                ConnectionStep::CodeIssued
                | ConnectionStep::TokenIssued
                | ConnectionStep::UserinfoServed,
                _,
            ) => Self::Succeeded,
            (ConnectionStep::SessionEnded, _) => Self::LoggedOut,
            _ => Self::InProgress,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Failed => "failed",
            Self::Succeeded => "succeeded",
            Self::LoggedOut => "logged_out",
        }
    }

    /// `self` followed by `next`: the same rule as the statement's for a stored row.
    fn then(self, next: Self) -> Self {
        match (self, next) {
            (Self::LoggedOut, _) | (_, Self::LoggedOut) => Self::LoggedOut,
            (Self::Succeeded, Self::Failed) => Self::Succeeded,
            (_, Self::Failed) => Self::Failed,
            (_, Self::Succeeded) => Self::Succeeded,
            (current, Self::InProgress) => current,
        }
    }
}

impl Fold {
    fn of(at: OffsetDateTime, s: &ConnectionEvent) -> Self {
        let started = s
            .timeline
            .iter()
            .map(|t| t.at)
            .fold(at, OffsetDateTime::min);
        let (ip, port, authoritative) = browser_address(s);
        Fold {
            connection_id: s.connection_id.clone(),
            started,
            updated: at,
            ip_authoritative: authoritative && ip.is_some(),
            source_ip: ip,
            port_authoritative: authoritative && port.is_some(),
            source_port: port.map(i32::from),
            sp_id: s.sp_id.clone(),
            idp_id: s.idp_id.clone(),
            acr: s.acr.clone(),
            sub_fi: s.sub_fi.clone(),
            sub_fs: s.sub_fs.clone(),
            account_id: s.account_id.clone(),
            session_id: s.session_id.clone(),
            outcome: ConnectionOutcome::of(s),
            error_code: s.error_code.clone(),
        }
    }

    /// This change followed by `next`, as one: applying the result to a row gives what
    /// applying both in turn would.
    fn then(&mut self, next: Fold) {
        fn address<T>(current: &mut Option<T>, auth: &mut bool, new: Option<T>, new_auth: bool) {
            if new_auth {
                *current = new;
                *auth = true;
            } else if current.is_none() {
                *current = new;
            }
        }
        self.started = self.started.min(next.started);
        self.updated = self.updated.max(next.updated);
        address(
            &mut self.source_ip,
            &mut self.ip_authoritative,
            next.source_ip,
            next.ip_authoritative,
        );
        address(
            &mut self.source_port,
            &mut self.port_authoritative,
            next.source_port,
            next.port_authoritative,
        );
        // The SP is the first step's; every other field the latest step's that has one.
        self.sp_id = self.sp_id.take().or(next.sp_id);
        let latest = |current: &mut Option<String>, new: Option<String>| {
            if new.is_some() {
                *current = new;
            }
        };
        latest(&mut self.idp_id, next.idp_id);
        latest(&mut self.acr, next.acr);
        latest(&mut self.sub_fi, next.sub_fi);
        latest(&mut self.sub_fs, next.sub_fs);
        latest(&mut self.account_id, next.account_id);
        latest(&mut self.session_id, next.session_id);
        latest(&mut self.error_code, next.error_code);
        self.outcome = self.outcome.then(next.outcome);
    }
}

/// The batch's connection steps merged per connection, in the order of the batch.
pub(crate) fn fold_all(events: &[&Event], steps: &[Option<ConnectionEvent>]) -> Vec<Fold> {
    let mut folds: Vec<Fold> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (event, step) in events.iter().zip(steps) {
        let Some(step) = step else { continue };
        let change = Fold::of(event.occurred_at, step);
        match index.get(&step.connection_id) {
            Some(&i) => folds[i].then(change),
            None => {
                index.insert(step.connection_id.clone(), folds.len());
                folds.push(change);
            }
        }
    }
    folds
}

/// Folds the batch's changes into their connections' rows, in one statement.
pub(crate) async fn fold(tx: &Transaction<'_>, folds: &[Fold]) -> Result<(), TraceError> {
    if folds.is_empty() {
        return Ok(());
    }
    fn column<'a, T>(folds: &'a [Fold], f: impl Fn(&'a Fold) -> T) -> Vec<T> {
        folds.iter().map(f).collect()
    }
    let ids = column(folds, |f| f.connection_id.as_str());
    let started = column(folds, |f| f.started);
    let updated = column(folds, |f| f.updated);
    let ips = column(folds, |f| f.source_ip.as_deref());
    let ip_auth = column(folds, |f| f.ip_authoritative);
    let ports = column(folds, |f| f.source_port);
    let port_auth = column(folds, |f| f.port_authoritative);
    let sps = column(folds, |f| f.sp_id.as_deref());
    let idps = column(folds, |f| f.idp_id.as_deref());
    let acrs = column(folds, |f| f.acr.as_deref());
    let subs_fi = column(folds, |f| f.sub_fi.as_deref());
    let subs_fs = column(folds, |f| f.sub_fs.as_deref());
    let accounts = column(folds, |f| f.account_id.as_deref());
    let sessions = column(folds, |f| f.session_id.as_deref());
    let outcomes = column(folds, |f| f.outcome.as_str());
    let errors = column(folds, |f| f.error_code.as_deref());
    // The same rules as `Fold::then`, against the stored row.
    tx.run(
        "WITH n AS (SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], \
         $4::text[], $5::int[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
         $11::text[], $12::text[], $13::text[], $14::text[], $15::bool[], $16::bool[]) \
         AS n(id, started, updated, ip, port, sp, idp, acr, sub_fi, sub_fs, account, \
         session, outcome, error, ip_auth, port_auth)) \
         INSERT INTO connections AS c (connection_id, started_at, updated_at, source_ip, \
         source_port, sp_id, idp_id, acr, sub_fi, sub_fs, account_id, session_id, outcome, \
         error_code) \
         SELECT id, started, updated, ip, port, sp, idp, acr, sub_fi, sub_fs, account, \
         session, outcome, error FROM n \
         ON CONFLICT (connection_id) DO UPDATE SET \
         started_at = LEAST(c.started_at, EXCLUDED.started_at), \
         updated_at = GREATEST(c.updated_at, EXCLUDED.updated_at), \
         source_ip = CASE WHEN (SELECT ip_auth FROM n WHERE id = EXCLUDED.connection_id) \
           THEN EXCLUDED.source_ip ELSE COALESCE(c.source_ip, EXCLUDED.source_ip) END, \
         source_port = CASE WHEN (SELECT port_auth FROM n WHERE id = EXCLUDED.connection_id) \
           THEN EXCLUDED.source_port ELSE COALESCE(c.source_port, EXCLUDED.source_port) END, \
         sp_id = COALESCE(c.sp_id, EXCLUDED.sp_id), \
         idp_id = COALESCE(EXCLUDED.idp_id, c.idp_id), \
         acr = COALESCE(EXCLUDED.acr, c.acr), sub_fi = COALESCE(EXCLUDED.sub_fi, c.sub_fi), \
         sub_fs = COALESCE(EXCLUDED.sub_fs, c.sub_fs), \
         account_id = COALESCE(EXCLUDED.account_id, c.account_id), \
         session_id = COALESCE(EXCLUDED.session_id, c.session_id), \
         outcome = CASE \
           WHEN c.outcome = 'logged_out' OR EXCLUDED.outcome = 'logged_out' THEN 'logged_out' \
           WHEN EXCLUDED.outcome = 'failed' AND c.outcome = 'succeeded' THEN c.outcome \
           WHEN EXCLUDED.outcome IN ('failed', 'succeeded') THEN EXCLUDED.outcome \
           ELSE c.outcome END, \
         error_code = COALESCE(EXCLUDED.error_code, c.error_code)",
        &[
            &ids, &started, &updated, &ips, &ports, &sps, &idps, &acrs, &subs_fi, &subs_fs,
            &accounts, &sessions, &outcomes, &errors, &ip_auth, &port_auth,
        ],
    )
    .await?;
    Ok(())
}

pub(crate) fn connection_from_row(r: &Row) -> Result<pb::Connection, TraceError> {
    let port: Option<i32> = r.try_get("source_port")?;
    let opt = |name: &str| -> Result<String, TraceError> {
        Ok(r.try_get::<_, Option<String>>(name)?.unwrap_or_default())
    };
    Ok(pb::Connection {
        connection_id: r.try_get("connection_id")?,
        started_at: rfc3339(r.try_get("started_at")?),
        updated_at: rfc3339(r.try_get("updated_at")?),
        source_ip: opt("source_ip")?,
        source_port: port.and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
        sp_id: opt("sp_id")?,
        idp_id: opt("idp_id")?,
        acr: opt("acr")?,
        sub_fi: opt("sub_fi")?,
        sub_fs: opt("sub_fs")?,
        account_id: opt("account_id")?,
        outcome: r.try_get("outcome")?,
        error_code: opt("error_code")?,
        steps: Vec::new(),
    })
}

impl Store {
    pub fn new(pool: Pool) -> Self {
        Store { pool }
    }

    pub async fn connection(&self, id: &str) -> Result<pb::Connection, TraceError> {
        let client = self.pool.get().await?;
        let row = client
            .opt("SELECT * FROM connections WHERE connection_id = $1", &[&id])
            .await?
            .ok_or(TraceError::NotFound)?;
        let mut c = connection_from_row(&row)?;
        let rows = client
            .all(
                // A purge under way may not have deleted all its records yet: none is shown.
                "SELECT event_id, kind, occurred_at, body FROM events WHERE connection_id = $1 \
                 AND seq > (SELECT coalesce(max(cut), 0) FROM purges) \
                 ORDER BY occurred_at, seq",
                &[&id],
            )
            .await?;
        for r in rows {
            let body: String = r.try_get("body")?;
            let event: Event =
                serde_json::from_str(&body).map_err(|e| TraceError::Invalid(e.to_string()))?;
            let step = event.payload::<ConnectionEvent>().ok();
            let kind: String = r.try_get("kind")?;
            let id: uuid::Uuid = r.try_get("event_id")?;
            // A sign-in's record: the steps it carries first, each named by the record
            // and its place in it.
            for (i, t) in step.iter().flat_map(|s| s.timeline.iter()).enumerate() {
                c.steps.push(pb::Step {
                    event_id: format!("{id}#{}", i + 1),
                    kind: t.step.as_str().to_string(),
                    occurred_at: rfc3339(t.at),
                    source_ip: t.source_ip.clone().unwrap_or_default(),
                    source_port: t.source_port.map(u32::from).unwrap_or(0),
                    outcome: "success".into(),
                });
            }
            c.steps.push(pb::Step {
                event_id: id.to_string(),
                kind: kind.trim_start_matches("connection.").to_string(),
                occurred_at: rfc3339(r.try_get("occurred_at")?),
                source_ip: step
                    .as_ref()
                    .and_then(|s| s.source_ip.clone())
                    .unwrap_or_default(),
                source_port: step
                    .as_ref()
                    .and_then(|s| s.source_port)
                    .map(u32::from)
                    .unwrap_or(0),
                outcome: match step.map(|s| s.outcome) {
                    Some(Outcome::Failure) => "failure".into(),
                    _ => "success".into(),
                },
            });
        }
        Ok(c)
    }

    pub async fn connections(
        &self,
        req: &pb::ListConnectionsRequest,
    ) -> Result<Vec<pb::Connection>, TraceError> {
        let client = self.pool.get().await?;
        // 0 is what a request that sets no limit carries: it gets the default, not one row.
        let limit = match req.limit {
            0 => DEFAULT_LIST_LIMIT,
            n => i64::from(n.min(MAX_LIST_LIMIT)),
        };
        let rows = client
            .all(
                "SELECT * FROM connections WHERE ($1 = '' OR sp_id = $1) \
                 AND ($2 = '' OR sub_fs = $2) AND ($3 = '' OR account_id = $3) \
                 ORDER BY started_at DESC LIMIT $4",
                &[&req.sp_id, &req.sub_fs, &req.account_id, &limit],
            )
            .await?;
        rows.iter().map(connection_from_row).collect()
    }
}
