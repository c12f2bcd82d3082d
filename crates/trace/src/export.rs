//! The export of a case as a proof file (`proof_file.rs`): the connections selected, the
//! records of each and of the case's earlier exports, each with its inclusion proof in one
//! signed checkpoint. The export is recorded in the log first (kind `trace.case_exported`:
//! who, what, why), so the file holds its own record and every later file of the case too.

use std::collections::BTreeSet;

use relais_bus::Event;
use relais_proto::trace::v1 as pb;
use relais_runtime::Prepared;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::log::{Log, hash_of, int, uint};
use crate::proof_file::{self, ProofFile, ProvenRecord};
use crate::tree::{self, Known};
use crate::{TraceError, store};

/// The kind of an export's own record.
pub const CASE_EXPORTED: &str = "trace.case_exported";
/// Connections exported when the request sets no limit, and the most it may ask for.
const DEFAULT_CONNECTIONS: i64 = 100;
const MAX_CONNECTIONS: u32 = 1000;
/// Records a file holds at most: what bounds the export's memory and the file's size.
const MAX_RECORDS: i64 = 20_000;
const MAX_CASE_LEN: usize = 200;

fn bad(m: impl Into<String>) -> TraceError {
    TraceError::BadRequest(m.into())
}

fn time_bound(name: &str, value: &str) -> Result<Option<OffsetDateTime>, TraceError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    OffsetDateTime::parse(value, &Rfc3339)
        .map(Some)
        .map_err(|_| bad(format!("{name} is not an RFC 3339 time: {value}")))
}

/// The selection's condition on `connections` and its two parameters (the second empty
/// when unused, and typed anyway: the statement is prepared), and its words in the file.
fn selection(
    subject: &pb::export_case_request::Subject,
) -> Result<(&'static str, String, String, String), TraceError> {
    use pb::export_case_request::Subject as S;
    let required = |what: &str, v: &str| {
        if v.trim().is_empty() {
            Err(bad(format!("{what} is empty")))
        } else {
            Ok(v.trim().to_string())
        }
    };
    Ok(match subject {
        S::ConnectionId(id) => {
            let id = required("connection_id", id)?;
            (
                "connection_id = $1 AND $2::text = ''",
                format!("connection_id={id}"),
                id,
                String::new(),
            )
        }
        S::AccountId(id) => {
            let id = required("account_id", id)?;
            (
                "account_id = $1 AND $2::text = ''",
                format!("account_id={id}"),
                id,
                String::new(),
            )
        }
        S::SubFi(s) => {
            let (idp, sub) = (
                required("sub_fi.partner_id", &s.partner_id)?,
                required("sub_fi.sub", &s.sub)?,
            );
            (
                "idp_id = $1 AND sub_fi = $2::text",
                format!("sub_fi={sub} at idp {idp}"),
                idp,
                sub,
            )
        }
        S::SubFs(s) => {
            let (sp, sub) = (
                required("sub_fs.partner_id", &s.partner_id)?,
                required("sub_fs.sub", &s.sub)?,
            );
            (
                "sp_id = $1 AND sub_fs = $2::text",
                format!("sub_fs={sub} at sp {sp}"),
                sp,
                sub,
            )
        }
        S::SourceIp(ip) => {
            let ip = required("source_ip", ip)?;
            (
                "source_ip = $1 AND $2::text = ''",
                format!("source_ip={ip}"),
                ip,
                String::new(),
            )
        }
    })
}

impl Log {
    /// Exports a case for `operator` (the caller's identity): see the module's comment.
    pub async fn export_case(
        &self,
        req: &pb::ExportCaseRequest,
        operator: &str,
    ) -> Result<pb::ExportCaseResponse, TraceError> {
        let case = req.case.trim();
        if case.is_empty() {
            return Err(bad(
                "case is required: the ticket or case the export is for",
            ));
        }
        if case.len() > MAX_CASE_LEN {
            return Err(bad(format!("case is longer than {MAX_CASE_LEN} bytes")));
        }
        let subject = req.subject.as_ref().ok_or_else(|| {
            bad("a selection is required: connection_id, account_id, sub_fi, sub_fs or source_ip")
        })?;
        let (condition, mut words, p1, p2) = selection(subject)?;
        let from = time_bound("from", &req.from)?;
        let to = time_bound("to", &req.to)?;
        if let Some(f) = from {
            words.push_str(&format!(" from {}", f.format(&Rfc3339).unwrap_or_default()));
        }
        if let Some(t) = to {
            words.push_str(&format!(" to {}", t.format(&Rfc3339).unwrap_or_default()));
        }
        let limit = match req.limit {
            0 => DEFAULT_CONNECTIONS,
            n => i64::from(n.min(MAX_CONNECTIONS)),
        };
        let mut client = self.pool().get().await?;
        let sql = format!(
            "SELECT connection_id FROM connections WHERE {condition} \
             AND ($3::timestamptz IS NULL OR started_at >= $3) \
             AND ($4::timestamptz IS NULL OR started_at < $4) \
             ORDER BY started_at DESC LIMIT $5"
        );
        let rows = client
            .all(&sql, &[&p1, &p2, &from, &to, &(limit + 1)])
            .await?;
        let mut connections: Vec<String> = rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let mut truncated = connections.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        connections.truncate(usize::try_from(limit).unwrap_or(usize::MAX));

        // Recorded before anything is read for the file: an export that fails after still
        // shows who looked at what.
        let exported_at = OffsetDateTime::now_utc();
        let event = Event::new(
            CASE_EXPORTED,
            "trace",
            serde_json::json!({
                "case": case,
                "reason": req.reason.trim(),
                "operator": operator,
                "selection": words,
                "connections": connections,
            }),
        );
        store::record(&mut client, &event).await?;
        let checkpoint = self.make_checkpoint().await?;
        let size = checkpoint.tree_size;

        let rows = client
            .all(
                // Never a purged record, even one a purge under way has not deleted yet.
                "SELECT seq, body FROM events WHERE seq <= $3 \
                 AND seq > (SELECT coalesce(max(cut), 0) FROM purges) AND \
                 (connection_id = ANY($1) OR (kind = $4 AND \
                 (body::jsonb -> 'payload' ->> 'case') = $2)) ORDER BY seq LIMIT $5",
                &[
                    &connections,
                    &case,
                    &int(size)?,
                    &CASE_EXPORTED,
                    &(MAX_RECORDS + 1),
                ],
            )
            .await?;
        truncated |= rows.len() > usize::try_from(MAX_RECORDS).unwrap_or(usize::MAX);
        let mut picked = Vec::with_capacity(rows.len());
        for r in rows
            .iter()
            .take(usize::try_from(MAX_RECORDS).unwrap_or(usize::MAX))
        {
            let seq: i64 = r.try_get(0)?;
            picked.push((uint(seq - 1)?, r.try_get::<_, String>(1)?));
        }
        // One read of every stored hash the proofs need.
        let computations = picked
            .iter()
            .map(|(i, _)| tree::inclusion(*i, size))
            .collect::<Result<Vec<_>, _>>()?;
        let mut needs = BTreeSet::new();
        for c in &computations {
            needs.extend(c.needs()?);
        }
        let needs: Vec<i64> = needs.into_iter().map(int).collect::<Result<_, _>>()?;
        let mut known = Known::default();
        for r in client
            .all(
                "SELECT idx, hash FROM tree_hashes WHERE idx = ANY($1)",
                &[&needs],
            )
            .await?
        {
            known
                .0
                .insert(uint(r.try_get(0)?)?, hash_of(&r.try_get::<_, Vec<u8>>(1)?)?);
        }
        let mut records = Vec::with_capacity(picked.len());
        for ((leaf_index, body), c) in picked.into_iter().zip(&computations) {
            records.push(ProvenRecord {
                leaf_index,
                proof: proof_file::encode(&c.run(&known)?),
                body,
            });
        }
        let file = ProofFile {
            format: proof_file::FORMAT.into(),
            origin: self.key().origin().to_string(),
            case: case.to_string(),
            exported_at: exported_at.format(&Rfc3339).unwrap_or_default(),
            selection: words,
            truncated,
            checkpoint: checkpoint.note,
            records,
            consistency: None,
        };
        let count = u32::try_from(file.records.len()).unwrap_or(u32::MAX);
        Ok(pb::ExportCaseResponse {
            proof_file: serde_json::to_string_pretty(&file)
                .map_err(|e| TraceError::Invalid(e.to_string()))?,
            connections: u32::try_from(connections.len()).unwrap_or(u32::MAX),
            records: count,
            truncated,
            export_event_id: event.id.to_string(),
        })
    }
}
