//! Investigations: the connections of one selection (an account, a SUB FI at an IdP, a
//! SUB FS at an SP, a source address, a connection) in a time window, newest first, a
//! page at a time. Pages follow the key (started_at, connection_id) from the last row
//! seen, so records arriving meanwhile neither shift nor repeat a page; the page token
//! carries that key, bound to the selection and window by an HMAC of the service's own.
//! Each lookup is appended to the log (`trace.lookup`: who, what, why, how many, which)
//! and committed before the answer leaves; one that cannot be recorded is refused.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deadpool_postgres::Pool;
use hmac::{Hmac, Mac};
use relais_bus::Event;
use relais_proto::trace::v1 as pb;
use relais_runtime::{Prepared, status_with_code};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_postgres::types::ToSql;
use tonic::{Code, Status};

use crate::checkpoint::CheckpointKey;
use crate::store::{self, Store};
use crate::{TraceError, tree};

/// The kind of a lookup's own record.
pub const LOOKUP: &str = "trace.lookup";
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;
/// The same bound as an export's case reference.
const MAX_CASE_LEN: usize = 200;
const MAX_REASON_LEN: usize = 1000;
const MAX_ID_LEN: usize = 200;
const TOKEN_VERSION: u8 = 1;
const QUERY_DIGEST_LEN: usize = 16;
const MAC_LEN: usize = 32;

pub const INVALID_CASE: &str = "invalid_case";
pub const INVALID_SELECTION: &str = "invalid_selection";
pub const INVALID_WINDOW: &str = "invalid_window";
pub const INVALID_PAGE_TOKEN: &str = "invalid_page_token";
pub const LOOKUP_NOT_RECORDED: &str = "lookup_not_recorded";

fn bad(code: &'static str, message: impl Into<String>) -> Status {
    status_with_code(Code::InvalidArgument, message.into(), code)
}

fn unavailable(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "investigation failed");
    status_with_code(
        Code::Unavailable,
        "trace store unavailable".into(),
        "service_unavailable",
    )
}

/// Who looked: the operator's certificate name, or the investigator signed in through
/// the gateway's REST API (and the service that carried the call).
#[derive(Clone, Debug)]
pub struct Looker {
    pub operator: String,
    pub via: Option<String>,
    /// Through the gateway: the investigator's address and the HTTP request's id.
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
}

/// A selection checked: its column condition, its parameters and its words.
struct Selection {
    condition: &'static str,
    params: Vec<String>,
    kind: &'static str,
    words: serde_json::Value,
}

fn required(what: &str, v: &str) -> Result<String, Status> {
    let v = v.trim();
    if v.is_empty() {
        return Err(bad(INVALID_SELECTION, format!("{what} is empty")));
    }
    if v.len() > MAX_ID_LEN {
        return Err(bad(
            INVALID_SELECTION,
            format!("{what} is longer than {MAX_ID_LEN} bytes"),
        ));
    }
    Ok(v.to_string())
}

fn selection(s: Option<&pb::search_connections_request::Selection>) -> Result<Selection, Status> {
    use pb::search_connections_request::Selection as S;
    let s = s.ok_or_else(|| {
        bad(
            INVALID_SELECTION,
            "a selection is required: connection_id, account_id, sub_fi, sub_fs or source_ip",
        )
    })?;
    Ok(match s {
        S::ConnectionId(id) => {
            let id = required("connection_id", id)?;
            Selection {
                condition: "connection_id = $1",
                words: serde_json::json!({ "connection_id": id }),
                params: vec![id],
                kind: "connection_id",
            }
        }
        S::AccountId(id) => {
            let id = required("account_id", id)?;
            Selection {
                condition: "account_id = $1",
                words: serde_json::json!({ "account_id": id }),
                params: vec![id],
                kind: "account_id",
            }
        }
        S::SubFi(at) => {
            let idp = required("sub_fi.partner_id", &at.partner_id)?;
            let sub = required("sub_fi.sub", &at.sub)?;
            Selection {
                condition: "idp_id = $1 AND sub_fi = $2",
                words: serde_json::json!({ "idp_id": idp, "sub_fi": sub }),
                params: vec![idp, sub],
                kind: "sub_fi",
            }
        }
        S::SubFs(at) => {
            let sp = required("sub_fs.partner_id", &at.partner_id)?;
            let sub = required("sub_fs.sub", &at.sub)?;
            Selection {
                condition: "sp_id = $1 AND sub_fs = $2",
                words: serde_json::json!({ "sp_id": sp, "sub_fs": sub }),
                params: vec![sp, sub],
                kind: "sub_fs",
            }
        }
        S::SourceIp(ip) => {
            let ip: IpAddr = ip.trim().parse().map_err(|_| {
                bad(
                    INVALID_SELECTION,
                    format!("source_ip is not an IPv4 or IPv6 address: {}", ip.trim()),
                )
            })?;
            // Stored as the gateway writes it: canonical (an IPv4-mapped IPv6 is IPv4).
            let ip = ip.to_canonical().to_string();
            Selection {
                condition: "source_ip = $1",
                words: serde_json::json!({ "source_ip": ip }),
                params: vec![ip],
                kind: "source_ip",
            }
        }
    })
}

fn time_bound(name: &str, value: &str) -> Result<Option<OffsetDateTime>, Status> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    OffsetDateTime::parse(value, &Rfc3339)
        .map(Some)
        .map_err(|_| {
            bad(
                INVALID_WINDOW,
                format!("{name} is not an RFC 3339 time: {value}"),
            )
        })
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// What the page tokens' key is derived from, with the log's key.
const PAGE_KEY_LABEL: &[u8] = b"relais trace page tokens v1";

/// Where the previous page stopped: the last row's key.
#[derive(Debug, PartialEq, Eq)]
struct Cursor {
    started_micros: i64,
    connection_id: String,
}

/// Signs and checks page tokens: version, the cursor, a digest of the query it belongs
/// to, and an HMAC over them with a key every replica of the log derives alike.
pub struct Pager {
    key: [u8; 32],
}

impl Pager {
    /// The key from the log's own: the (deterministic, Ed25519) signature of a note no
    /// checkpoint can be (a tree of `u64::MAX` records), which only the key's holder can
    /// make and nobody is ever shown. Every replica of the log so takes every page token,
    /// and a restart keeps them.
    pub fn for_log(key: &CheckpointKey) -> Result<Self, TraceError> {
        let note = key
            .sign(u64::MAX, tree::Hash(Sha256::digest(PAGE_KEY_LABEL).into()))
            .map_err(|e| TraceError::Invalid(format!("the page tokens' key: {e}")))?;
        Ok(Pager {
            key: Sha256::digest(note.as_bytes()).into(),
        })
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        // Any key length is accepted by HMAC.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(payload);
        mac
    }

    fn token(&self, query: &[u8; QUERY_DIGEST_LEN], cursor: &Cursor) -> String {
        let mut payload = vec![TOKEN_VERSION];
        payload.extend_from_slice(&cursor.started_micros.to_be_bytes());
        payload.extend_from_slice(query);
        payload.extend_from_slice(cursor.connection_id.as_bytes());
        let tag = self.mac(&payload).finalize().into_bytes();
        payload.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(payload)
    }

    fn cursor(&self, token: &str, query: &[u8; QUERY_DIGEST_LEN]) -> Result<Cursor, Status> {
        let refuse = |why: &str| {
            bad(
                INVALID_PAGE_TOKEN,
                format!("page_token {why}: start again without one"),
            )
        };
        let raw = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| refuse("is not one this service issued"))?;
        let fixed = 1 + 8 + QUERY_DIGEST_LEN;
        if raw.len() < fixed + MAC_LEN {
            return Err(refuse("is not one this service issued"));
        }
        let (payload, tag) = raw.split_at(raw.len() - MAC_LEN);
        self.mac(payload)
            .verify_slice(tag)
            .map_err(|_| refuse("is not one this service issued (or it restarted since)"))?;
        if payload[0] != TOKEN_VERSION {
            return Err(refuse("is of another version"));
        }
        if &payload[9..fixed] != query.as_slice() {
            return Err(refuse("belongs to another selection or window"));
        }
        let mut micros = [0u8; 8];
        micros.copy_from_slice(&payload[1..9]);
        let connection_id = String::from_utf8(payload[fixed..].to_vec())
            .map_err(|_| refuse("is not one this service issued"))?;
        Ok(Cursor {
            started_micros: i64::from_be_bytes(micros),
            connection_id,
        })
    }
}

fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// Runs one lookup for `who`: see the module's comment.
pub async fn search(
    pool: &Pool,
    store: &Store,
    pager: &Pager,
    req: &pb::SearchConnectionsRequest,
    who: &Looker,
) -> Result<pb::SearchConnectionsResponse, Status> {
    let case = req.case.trim();
    if case.is_empty() {
        return Err(bad(
            INVALID_CASE,
            "case is required: the ticket or case the lookup is for",
        ));
    }
    if case.len() > MAX_CASE_LEN {
        return Err(bad(
            INVALID_CASE,
            format!("case is longer than {MAX_CASE_LEN} bytes"),
        ));
    }
    let reason = req.reason.trim();
    if reason.len() > MAX_REASON_LEN {
        return Err(bad(
            INVALID_CASE,
            format!("reason is longer than {MAX_REASON_LEN} bytes"),
        ));
    }
    let sel = selection(req.selection.as_ref())?;
    let from = time_bound("from", &req.from)?;
    let to = time_bound("to", &req.to)?;
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(bad(INVALID_WINDOW, "from must be before to"));
    }
    if req.page_size > MAX_PAGE {
        return Err(bad(
            INVALID_SELECTION,
            format!("page_size is at most {MAX_PAGE}"),
        ));
    }
    let page_size = match req.page_size {
        0 => DEFAULT_PAGE,
        n => n,
    };
    let window = serde_json::json!({
        "from": from.map(rfc3339),
        "to": to.map(rfc3339),
    });
    let query = {
        let digest = Sha256::digest(
            serde_json::to_vec(&(sel.kind, &sel.words, &window)).unwrap_or_default(),
        );
        let mut q = [0u8; QUERY_DIGEST_LEN];
        q.copy_from_slice(&digest[..QUERY_DIGEST_LEN]);
        q
    };
    let cursor = match req.page_token.trim() {
        "" => None,
        token => Some(pager.cursor(token, &query)?),
    };

    // Only the conditions asked: each variant gets a plan that uses its index.
    let mut sql = format!("SELECT * FROM connections WHERE {}", sel.condition);
    let mut params: Vec<&(dyn ToSql + Sync)> = sel
        .params
        .iter()
        .map(|p| p as &(dyn ToSql + Sync))
        .collect();
    if let Some(f) = &from {
        params.push(f);
        sql.push_str(&format!(" AND started_at >= ${}", params.len()));
    }
    if let Some(t) = &to {
        params.push(t);
        sql.push_str(&format!(" AND started_at < ${}", params.len()));
    }
    let after = cursor
        .as_ref()
        .map(|c| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(c.started_micros) * 1000).map_err(
                |_| {
                    bad(
                        INVALID_PAGE_TOKEN,
                        "page_token is not one this service issued",
                    )
                },
            )
        })
        .transpose()?;
    if let (Some(at), Some(c)) = (&after, &cursor) {
        params.push(at);
        params.push(&c.connection_id);
        sql.push_str(&format!(
            " AND (started_at, connection_id) < (${}, ${})",
            params.len() - 1,
            params.len()
        ));
    }
    let fetch = i64::from(page_size) + 1;
    params.push(&fetch);
    sql.push_str(&format!(
        " ORDER BY started_at DESC, connection_id DESC LIMIT ${}",
        params.len()
    ));

    let mut client = pool.get().await.map_err(unavailable)?;
    let rows = client.all(&sql, &params).await.map_err(unavailable)?;
    let more = rows.len() > page_size as usize;
    let mut connections = Vec::with_capacity(rows.len().min(page_size as usize));
    let mut last = None;
    for row in rows.iter().take(page_size as usize) {
        let started: OffsetDateTime = row.try_get("started_at").map_err(unavailable)?;
        let c = store::connection_from_row(row).map_err(unavailable)?;
        last = Some(Cursor {
            started_micros: micros(started),
            connection_id: c.connection_id.clone(),
        });
        connections.push(c);
    }
    // A connection asked for by its id comes whole, with its steps.
    if sel.kind == "connection_id"
        && let Some(c) = connections.first_mut()
    {
        *c = store
            .connection(&c.connection_id)
            .await
            .map_err(unavailable)?;
    }
    let next_page_token = match (more, &last) {
        (true, Some(last)) => pager.token(&query, last),
        _ => String::new(),
    };

    // Recorded and committed before anything is answered.
    let ids: Vec<&str> = connections
        .iter()
        .map(|c| c.connection_id.as_str())
        .collect();
    let event = Event::new(
        LOOKUP,
        "trace",
        serde_json::json!({
            "operator": who.operator,
            "via": who.via,
            "source_ip": who.source_ip,
            "request_id": who.request_id,
            "case": case,
            "reason": reason,
            "selection": { "kind": sel.kind, "values": sel.words },
            "window": window,
            "page": cursor.is_some(),
            "returned": connections.len(),
            "connections": ids,
        }),
    );
    let recorded = store::record(&mut client, &event).await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, "a lookup could not be recorded: refused");
        return Err(status_with_code(
            Code::Unavailable,
            "the lookup could not be recorded in the proof store; nothing is answered".into(),
            LOOKUP_NOT_RECORDED,
        ));
    }
    Ok(pb::SearchConnectionsResponse {
        connections,
        next_page_token,
        lookup_event_id: event.id.to_string(),
    })
}
