//! The investigation API over HTTP: JSON out, each route one `SearchConnections` call of
//! the proof store with the bearer token passed through. Trace checks the token (a
//! registry `investigator`, signed in at a strong enough level, as their enrolled IdP
//! identity), records the lookup with that person as who looked, then answers. The
//! OpenAPI document is built from these same handlers.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use relais_proto::trace::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::request::{Meta, authorization};
use crate::routes::Shared;
use crate::support_api::BearerAuth;

/// Where the investigation API is served.
pub(crate) const BASE: &str = "/api/investigations/v1";
const REALM: &str = "relais-investigations";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Relais investigation API",
        description = "The connections of an account, of a SUB FI at an identity provider, \
of a SUB FS at a service provider, of a source address, or one connection, in a time window, \
newest first, a page at a time. Callers present an access token Relais issued to the \
investigation client (scope `email`) for a person the registry holds as an `investigator`, \
signed in at a level of `trace.investigator_acr_values` as the IdP identity they are enrolled \
with. Every lookup needs a case or ticket reference and is recorded in the proof store \
(`trace.lookup`: who, what, why, how many) before it is answered.",
        version = "1"
    ),
    servers((url = "/api/investigations/v1")),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags((name = "connections", description = "Looking up connections"))
)]
struct ApiDoc;

/// The routes under [`BASE`] and the document that describes them.
pub(crate) fn router() -> (axum::Router<Shared>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(search))
        .routes(routes!(connection))
        .split_for_parts()
}

/// An error answer: a stable code and words for a person.
#[derive(Serialize, ToSchema)]
pub(crate) struct ApiError {
    /// `invalid_token`, `insufficient_user_authentication` (the challenge names the
    /// levels), `forbidden`, `identity_mismatch`, `invalid_request`, `invalid_case`,
    /// `invalid_selection`, `invalid_window`, `invalid_page_token`, `not_found`,
    /// `lookup_not_recorded`, `service_unavailable`.
    error: String,
    error_description: String,
    request_id: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Step {
    event_id: String,
    kind: String,
    occurred_at: String,
    source_ip: Option<String>,
    source_port: Option<u32>,
    /// `success` or `failure`.
    outcome: String,
}

/// A connection's summary row: every field the terms of use require. Times are RFC 3339
/// UTC; `null`: not known.
#[derive(Serialize, ToSchema)]
pub(crate) struct Connection {
    connection_id: String,
    started_at: String,
    updated_at: String,
    source_ip: Option<String>,
    source_port: Option<u32>,
    sp_id: Option<String>,
    idp_id: Option<String>,
    acr: Option<String>,
    sub_fi: Option<String>,
    sub_fs: Option<String>,
    account_id: Option<String>,
    /// `in_progress`, `succeeded`, `failed` or `logged_out`.
    outcome: String,
    error_code: Option<String>,
    /// Only for a connection asked for by its id.
    steps: Vec<Step>,
}

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn port(p: u32) -> Option<u32> {
    (p != 0).then_some(p)
}

impl From<pb::Connection> for Connection {
    fn from(c: pb::Connection) -> Self {
        Connection {
            connection_id: c.connection_id,
            started_at: c.started_at,
            updated_at: c.updated_at,
            source_ip: some(c.source_ip),
            source_port: port(c.source_port),
            sp_id: some(c.sp_id),
            idp_id: some(c.idp_id),
            acr: some(c.acr),
            sub_fi: some(c.sub_fi),
            sub_fs: some(c.sub_fs),
            account_id: some(c.account_id),
            outcome: c.outcome,
            error_code: some(c.error_code),
            steps: c
                .steps
                .into_iter()
                .map(|s| Step {
                    event_id: s.event_id,
                    kind: s.kind,
                    occurred_at: s.occurred_at,
                    source_ip: some(s.source_ip),
                    source_port: port(s.source_port),
                    outcome: s.outcome,
                })
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ConnectionPage {
    /// Newest first.
    connections: Vec<Connection>,
    /// Pass it as `page_token`, with the same selection and window, for the next page;
    /// `null` on the last one.
    next_page_token: Option<String>,
    /// The lookup's own record in the proof store.
    lookup_event_id: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ConnectionLookup {
    connection: Connection,
    lookup_event_id: String,
}

/// Exactly one selection: `account_id`; `idp_id` with `sub_fi`; `sp_id` with `sub_fs`;
/// `source_ip`; or `connection_id`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchQuery {
    /// The case or ticket the lookup is for (required, at most 200 bytes); recorded.
    case: Option<String>,
    /// Why, in words (at most 1000 bytes); recorded.
    reason: Option<String>,
    account_id: Option<String>,
    /// With `sub_fi`: the identity provider's id.
    idp_id: Option<String>,
    sub_fi: Option<String>,
    /// With `sub_fs`: the service provider's client id.
    sp_id: Option<String>,
    sub_fs: Option<String>,
    /// An IPv4 or IPv6 address.
    source_ip: Option<String>,
    connection_id: Option<String>,
    /// Connections started at or after (RFC 3339).
    from: Option<String>,
    /// Connections started before (RFC 3339).
    to: Option<String>,
    /// Per page: default 50, at most 500.
    page_size: Option<u32>,
    /// The previous page's `next_page_token`.
    page_token: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaseQuery {
    /// The case or ticket the lookup is for (required, at most 200 bytes); recorded.
    case: Option<String>,
    /// Why, in words; recorded.
    reason: Option<String>,
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let header = authorization(headers);
    let token = header.trim().strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

fn error(meta: &Meta, status: StatusCode, code: &str, description: &str) -> Response {
    challenged(meta, status, code, description, None)
}

/// An error answer; a 401 carries its RFC 6750 challenge, with the levels to reach when
/// the sign-in was too weak (RFC 9470).
fn challenged(
    meta: &Meta,
    status: StatusCode,
    code: &str,
    description: &str,
    acr_values: Option<&str>,
) -> Response {
    let body = ApiError {
        error: code.to_owned(),
        error_description: description.to_owned(),
        request_id: meta.request_id.clone(),
    };
    crate::support_api::api_error(REALM, status, code, body, acr_values)
}

fn failure(meta: &Meta, status: &tonic::Status) -> Response {
    use tonic::Code;
    let http = match status.code() {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let code = relais_runtime::error_code(status);
    // A lookup that could not be recorded says so: it is why nothing is answered.
    if http == StatusCode::SERVICE_UNAVAILABLE && code != Some("lookup_not_recorded") {
        tracing::warn!(request_id = %meta.request_id, code = ?status.code(), message = status.message(), "trace call failed");
        return error(
            meta,
            http,
            "service_unavailable",
            "The proof store is unavailable; try again shortly.",
        );
    }
    let code = code.unwrap_or(match http {
        StatusCode::UNAUTHORIZED => "invalid_token",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        _ => "invalid_request",
    });
    // Levels are acr tokens: nothing that could break the header.
    let acr_values = status
        .metadata()
        .get(relais_runtime::ACR_VALUES_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" _.-:".contains(&b))
        });
    challenged(meta, http, code, status.message(), acr_values)
}

fn bad_query(meta: &Meta, rejection: &QueryRejection) -> Response {
    error(
        meta,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &rejection.body_text(),
    )
}

fn no_token(meta: &Meta) -> Response {
    error(
        meta,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "An investigator's access token is required (Authorization: Bearer).",
    )
}

/// The one selection the query names, or why not.
fn selection(q: &mut SearchQuery) -> Result<pb::search_connections_request::Selection, String> {
    use pb::search_connections_request::Selection as S;
    let at = |partner: Option<String>, sub: Option<String>| pb::SubjectAt {
        partner_id: partner.unwrap_or_default(),
        sub: sub.unwrap_or_default(),
    };
    let mut found = Vec::new();
    if let Some(id) = q.account_id.take() {
        found.push(S::AccountId(id));
    }
    if q.idp_id.is_some() || q.sub_fi.is_some() {
        found.push(S::SubFi(at(q.idp_id.take(), q.sub_fi.take())));
    }
    if q.sp_id.is_some() || q.sub_fs.is_some() {
        found.push(S::SubFs(at(q.sp_id.take(), q.sub_fs.take())));
    }
    if let Some(ip) = q.source_ip.take() {
        found.push(S::SourceIp(ip));
    }
    if let Some(id) = q.connection_id.take() {
        found.push(S::ConnectionId(id));
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(
            "a selection is required: account_id, idp_id with sub_fi, sp_id with \
                  sub_fs, source_ip or connection_id"
                .into(),
        ),
        _ => Err(
            "exactly one selection: account_id, idp_id with sub_fi, sp_id with sub_fs, \
                  source_ip or connection_id"
                .into(),
        ),
    }
}

async fn lookup(
    s: &Shared,
    meta: &Meta,
    request: pb::SearchConnectionsRequest,
) -> Result<pb::SearchConnectionsResponse, Response> {
    let outbound = crate::support_api::outbound(s, meta, request);
    s.trace()
        .search_connections(outbound)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| failure(meta, &status))
}

fn ok<T: Serialize>(body: T) -> Response {
    let mut response = (StatusCode::OK, Json(body)).into_response();
    crate::render::no_store(&mut response);
    response
}

#[utoipa::path(get, path = "/connections", tag = "connections",
    description = "The connections of one selection in a time window, newest first, a page \
at a time (keyset: a page does not shift while connections arrive). The lookup is recorded \
before it is answered.",
    params(SearchQuery),
    responses(
        (status = 200, body = ConnectionPage),
        (status = 400, body = ApiError), (status = 401, body = ApiError),
        (status = 403, body = ApiError),
        (status = 503, body = ApiError, description = "Unavailable, or the lookup could not be recorded")
    ))]
async fn search(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Response {
    let mut q = match query {
        Ok(Query(q)) => q,
        Err(rejection) => return bad_query(&meta, &rejection),
    };
    // No token, no call: trace would otherwise see the gateway alone.
    let Some(token) = bearer(&headers) else {
        return no_token(&meta);
    };
    let selection = match selection(&mut q) {
        Ok(selection) => selection,
        Err(why) => return error(&meta, StatusCode::BAD_REQUEST, "invalid_selection", &why),
    };
    let request = pb::SearchConnectionsRequest {
        case: q.case.unwrap_or_default(),
        reason: q.reason.unwrap_or_default(),
        selection: Some(selection),
        from: q.from.unwrap_or_default(),
        to: q.to.unwrap_or_default(),
        page_size: q.page_size.unwrap_or_default(),
        page_token: q.page_token.unwrap_or_default(),
        access_token: token,
    };
    match lookup(&s, &meta, request).await {
        Ok(r) => ok(ConnectionPage {
            connections: r.connections.into_iter().map(Connection::from).collect(),
            next_page_token: some(r.next_page_token),
            lookup_event_id: r.lookup_event_id,
        }),
        Err(response) => response,
    }
}

#[utoipa::path(get, path = "/connections/{id}", tag = "connections",
    description = "One connection with its steps. The lookup is recorded before it is \
answered, a miss included.",
    params(("id" = String, Path, description = "The connection's id"), CaseQuery),
    responses(
        (status = 200, body = ConnectionLookup),
        (status = 400, body = ApiError), (status = 401, body = ApiError),
        (status = 403, body = ApiError), (status = 404, body = ApiError),
        (status = 503, body = ApiError, description = "Unavailable, or the lookup could not be recorded")
    ))]
async fn connection(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<CaseQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(rejection) => return bad_query(&meta, &rejection),
    };
    let Some(token) = bearer(&headers) else {
        return no_token(&meta);
    };
    let request = pb::SearchConnectionsRequest {
        case: q.case.unwrap_or_default(),
        reason: q.reason.unwrap_or_default(),
        selection: Some(pb::search_connections_request::Selection::ConnectionId(id)),
        access_token: token,
        ..pb::SearchConnectionsRequest::default()
    };
    match lookup(&s, &meta, request).await {
        Ok(r) => match r.connections.into_iter().next() {
            Some(c) => ok(ConnectionLookup {
                connection: c.into(),
                lookup_event_id: r.lookup_event_id,
            }),
            None => error(
                &meta,
                StatusCode::NOT_FOUND,
                "not_found",
                "No such connection (the lookup is recorded).",
            ),
        },
        Err(response) => response,
    }
}

/// Any other path under the API: a JSON 404, not a page.
pub(crate) async fn not_found(meta: Meta) -> Response {
    error(
        &meta,
        StatusCode::NOT_FOUND,
        "not_found",
        "No such investigation API route; see /api/investigations/v1/openapi.json.",
    )
}
