//! A person's own history (the gateway's account page): their live access token for the
//! hub's account client, checked with oidc-front, names the account; its connections of
//! the last six months are listed newest first. The view is itself a record of the log
//! (`trace.history_viewed`: account, count), committed before the answer; one that cannot
//! be recorded is refused. The token is the only key: no account id is ever taken from the
//! request, so a person sees only their own connections.

use deadpool_postgres::Pool;
use relais_bus::Event;
use relais_proto::oidc_front::v1::VerifyAccessTokenRequest;
use relais_proto::trace::v1 as pb;
use relais_runtime::{Prepared, status_with_code};
use time::{Duration, OffsetDateTime};
use tonic::{Code, Status};

use crate::investigators::{self, Directory, INVALID_TOKEN};
use crate::store;

/// The kind of a view's own record.
pub const HISTORY_VIEWED: &str = "trace.history_viewed";
/// The refusal when the view cannot be recorded.
pub const HISTORY_NOT_RECORDED: &str = "history_not_recorded";
/// Six months, as the page promises (183 days: never less than six calendar months).
const WINDOW: Duration = Duration::days(183);
/// A person's page, not an export: beyond this the answer says it is truncated.
const MAX_ENTRIES: i64 = 500;

fn unavailable(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "history failed");
    status_with_code(
        Code::Unavailable,
        "trace store unavailable".into(),
        "service_unavailable",
    )
}

/// The account behind `token`, a live token of `client_id` only.
async fn account(directory: &Directory, client_id: &str, token: &str) -> Result<String, Status> {
    let refused = || {
        status_with_code(
            Code::Unauthenticated,
            "the access token is invalid, expired, revoked or not the account page's".into(),
            INVALID_TOKEN,
        )
    };
    if token.trim().is_empty() {
        return Err(refused());
    }
    let (_, front) = directory.clients()?;
    let request = VerifyAccessTokenRequest {
        token: token.trim().to_owned(),
        client_id: client_id.to_owned(),
    };
    let verified = match front.clone().verify_access_token(request).await {
        Ok(v) => v.into_inner(),
        Err(status) if status.code() == Code::Unauthenticated => return Err(refused()),
        Err(status) => return Err(investigators::unavailable("oidc-front", &status)),
    };
    if verified.account_id.is_empty() {
        // An older front that does not say the account: nothing to show safely.
        return Err(investigators::unavailable(
            "oidc-front",
            &Status::internal("the verified token names no account"),
        ));
    }
    Ok(verified.account_id)
}

/// Answers one view: see the module's comment.
pub async fn my_connections(
    pool: &Pool,
    directory: &Directory,
    client_id: &str,
    req: &pb::MyConnectionsRequest,
    via: &str,
) -> Result<pb::MyConnectionsResponse, Status> {
    let account_id = account(directory, client_id, &req.access_token).await?;
    let since = OffsetDateTime::now_utc() - WINDOW;
    let fetch = MAX_ENTRIES + 1;
    let mut client = pool.get().await.map_err(unavailable)?;
    let rows = client
        .all(
            "SELECT * FROM connections WHERE account_id = $1 AND started_at >= $2 \
             ORDER BY started_at DESC, connection_id DESC LIMIT $3",
            &[&account_id, &since, &fetch],
        )
        .await
        .map_err(unavailable)?;
    let truncated = rows.len() as i64 > MAX_ENTRIES;
    let mut connections = Vec::with_capacity(rows.len());
    for row in rows.iter().take(MAX_ENTRIES as usize) {
        let c = store::connection_from_row(row).map_err(unavailable)?;
        connections.push(pb::HistoryEntry {
            connection_id: c.connection_id,
            started_at: c.started_at,
            sp_id: c.sp_id,
            idp_id: c.idp_id,
            acr: c.acr,
            outcome: c.outcome,
        });
    }

    // Recorded and committed before anything is answered.
    let event = Event::new(
        HISTORY_VIEWED,
        "trace",
        serde_json::json!({
            "account_id": account_id,
            "via": via,
            "returned": connections.len(),
            "truncated": truncated,
        }),
    );
    let recorded = store::record(&mut client, &event).await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, "a history view could not be recorded: refused");
        return Err(status_with_code(
            Code::Unavailable,
            "the view could not be recorded in the proof store; nothing is answered".into(),
            HISTORY_NOT_RECORDED,
        ));
    }
    Ok(pb::MyConnectionsResponse {
        connections,
        truncated,
        view_event_id: event.id.to_string(),
    })
}
