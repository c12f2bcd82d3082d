//! The support API over HTTP: JSON in and out, each route one call of the support gRPC
//! service with the bearer token passed through (support checks it, maps the person to
//! a role and records the call). The OpenAPI document is built from these same handlers,
//! so it cannot describe a route that is not served or miss one that is.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use relais_proto::support::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::request::{Meta, authorization};
use crate::routes::Shared;

/// Where the support API is served.
pub(crate) const BASE: &str = "/api/support/v1";
/// Largest raw message the mail intake takes: under gRPC's 4 MiB message bound.
const MAX_MAIL_BYTES: usize = 3 * 1024 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Relais support API",
        description = "Tickets of partners' contacts and support staff: severities, \
business-hour deadlines, escalation, closing rules, the resolution indicator. Callers \
present an access token that Relais issued to the support console client (scope `email`); \
their role comes from the registry. A contact sees only their own partner's tickets. \
Every call, refusals included, is recorded in the proof store.",
        version = "1"
    ),
    servers((url = "/api/support/v1")),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "tickets", description = "Filing, following and handling tickets"),
        (name = "indicator", description = "Share of incidents resolved in time"),
        (name = "mail", description = "E-mail intake")
    )
)]
struct ApiDoc;

/// The bearer scheme of the hub's REST APIs, in their OpenAPI documents.
pub(crate) struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The routes under [`BASE`] and the document that describes them.
pub(crate) fn router() -> (axum::Router<Shared>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_tickets, open_ticket))
        .routes(routes!(get_ticket))
        .routes(routes!(acknowledge))
        .routes(routes!(comment))
        .routes(routes!(request_information))
        .routes(routes!(set_severity))
        .routes(routes!(assign))
        .routes(routes!(declare_blocking))
        .routes(routes!(resolve))
        .routes(routes!(confirm_resolution))
        .routes(routes!(agree_to_close))
        .routes(routes!(indicator))
        .routes(routes!(quarantined_mail))
        .routes(routes!(submit_mail))
        .split_for_parts()
}

/// An error answer: a stable code and words for a person.
#[derive(Serialize, ToSchema)]
pub(crate) struct ApiError {
    /// `invalid_token`, `insufficient_user_authentication` (a staff member's sign-in
    /// below `support.staff_acr_values`; the challenge names the levels), `forbidden`,
    /// `identity_mismatch` (not the IdP identity the person is enrolled with),
    /// `unknown_ticket`, `invalid_argument`, `invalid_state`, `not_found`,
    /// `service_unavailable`.
    error: String,
    error_description: String,
    request_id: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct Attachment {
    file_name: String,
    #[serde(default)]
    content_type: String,
    #[serde(default)]
    size: u64,
    /// Hex SHA-256 of the content (the content itself stays with the partner).
    sha256: String,
}

impl From<Attachment> for pb::Attachment {
    fn from(a: Attachment) -> Self {
        pb::Attachment {
            file_name: a.file_name,
            content_type: a.content_type,
            size: a.size,
            sha256: a.sha256,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct HistoryEntry {
    at: String,
    /// Who acted: an address with its partner or role, or `system`.
    actor: String,
    action: String,
    /// What changed, as recorded.
    details: serde_json::Value,
}

/// A ticket with its deadlines as they stand. Times are RFC 3339 UTC; `null`: none.
#[derive(Serialize, ToSchema)]
pub(crate) struct Ticket {
    id: String,
    /// `sp` or `idp`.
    partner_kind: String,
    partner_id: String,
    /// `all_partners`, `one_partner`, `several_users`, `one_user`, `information_request`.
    scope: String,
    /// 1 (critical) to 5 (information).
    severity: u32,
    severity_name: String,
    subject: String,
    status: String,
    /// The support level or role handling it.
    assignee: String,
    /// The deadline table it is judged by.
    policy: String,
    opened_at: String,
    acknowledged_at: Option<String>,
    acknowledge_by: Option<String>,
    escalate_at: Option<String>,
    resolve_by: Option<String>,
    escalated_at: Option<String>,
    deadline_missed_at: Option<String>,
    acknowledgement_overdue_at: Option<String>,
    blocking_since: Option<String>,
    blocking_fix_by: Option<String>,
    inactivity_close_at: Option<String>,
    no_remark_close_at: Option<String>,
    resolved_at: Option<String>,
    closed_at: Option<String>,
    close_reason: Option<String>,
    /// The identity provider disabled while this incident is unresolved.
    disabled_idp: Option<String>,
    /// Empty in lists.
    history: Vec<HistoryEntry>,
}

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn kind_name(kind: i32) -> String {
    match pb::PartnerKind::try_from(kind) {
        Ok(pb::PartnerKind::Sp) => "sp",
        Ok(pb::PartnerKind::Idp) => "idp",
        _ => "",
    }
    .to_owned()
}

fn kind_value(name: &str) -> i32 {
    match name {
        "sp" => pb::PartnerKind::Sp as i32,
        "idp" => pb::PartnerKind::Idp as i32,
        // Anything else is refused by support as an unknown kind.
        "" => pb::PartnerKind::Unspecified as i32,
        _ => -1,
    }
}

impl From<pb::Ticket> for Ticket {
    fn from(t: pb::Ticket) -> Self {
        Ticket {
            id: t.id,
            partner_kind: kind_name(t.partner_kind),
            partner_id: t.partner_id,
            scope: t.scope,
            severity: t.severity,
            severity_name: t.severity_name,
            subject: t.subject,
            status: t.status,
            assignee: t.assignee,
            policy: t.policy,
            opened_at: t.opened_at,
            acknowledged_at: some(t.acknowledged_at),
            acknowledge_by: some(t.acknowledge_by),
            escalate_at: some(t.escalate_at),
            resolve_by: some(t.resolve_by),
            escalated_at: some(t.escalated_at),
            deadline_missed_at: some(t.deadline_missed_at),
            acknowledgement_overdue_at: some(t.acknowledgement_overdue_at),
            blocking_since: some(t.blocking_since),
            blocking_fix_by: some(t.blocking_fix_by),
            inactivity_close_at: some(t.inactivity_close_at),
            no_remark_close_at: some(t.no_remark_close_at),
            resolved_at: some(t.resolved_at),
            closed_at: some(t.closed_at),
            close_reason: some(t.close_reason),
            disabled_idp: some(t.disabled_idp),
            history: t
                .history
                .into_iter()
                .map(|h| HistoryEntry {
                    at: h.at,
                    actor: h.actor,
                    action: h.action,
                    details: serde_json::from_str(&h.details)
                        .unwrap_or(serde_json::Value::String(h.details)),
                })
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TicketList {
    tickets: Vec<Ticket>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTicket {
    /// `sp` or `idp`.
    partner_kind: String,
    partner_id: String,
    /// `all_partners`, `one_partner`, `several_users`, `one_user`, `information_request`.
    scope: String,
    /// 1–5; absent: from the scope (support may change it).
    #[serde(default)]
    severity: Option<u32>,
    subject: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    attachments: Vec<Attachment>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Text {
    text: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Comment {
    body: String,
    #[serde(default)]
    attachments: Vec<Attachment>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeverityChange {
    severity: u32,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Assignment {
    /// `level1`, `level2`, `level3`, `production_manager`, `product_owner`,
    /// `partner_relations`.
    role: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct TicketQuery {
    /// Only tickets in this status.
    status: Option<String>,
    /// With `partner_id`: only this partner's tickets (`sp` or `idp`).
    partner_kind: Option<String>,
    partner_id: Option<String>,
    /// At most 500; default 100.
    limit: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct Period {
    /// Start (RFC 3339).
    from: String,
    /// End (RFC 3339).
    to: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct Limit {
    /// At most 500; default 100.
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Share {
    received: u64,
    resolved_in_time: u64,
    late: u64,
    pending: u64,
    /// Resolved in time among those decided; `null` when none is.
    percent: Option<f64>,
    meets_target: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PartnerShare {
    partner_kind: String,
    partner_id: String,
    share: Option<Share>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Indicator {
    from: String,
    to: String,
    target_percent: f64,
    resolution_business_hours: u32,
    overall: Option<Share>,
    per_partner: Vec<PartnerShare>,
}

fn share(s: pb::Share) -> Share {
    Share {
        received: s.received,
        resolved_in_time: s.resolved_in_time,
        late: s.late,
        pending: s.pending,
        percent: s.percent,
        meets_target: s.meets_target,
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct QuarantinedMail {
    id: String,
    received_at: String,
    sender: Option<String>,
    reason: String,
    size: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct QuarantinedMailList {
    mails: Vec<QuarantinedMail>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MailReceipt {
    /// `opened`, `replied`, `duplicate` or `quarantined`.
    outcome: String,
    ticket_id: Option<String>,
    quarantine_id: Option<String>,
    reason: Option<String>,
}

/// A backend call (support's, trace's investigations) with the gateway's deadline and where the HTTP request came from.
pub(crate) fn outbound<T>(s: &Shared, meta: &Meta, message: T) -> tonic::Request<T> {
    let mut request = s.grpc(message);
    for (key, value) in [
        ("relais-source-ip", meta.source.ip.as_str()),
        ("relais-request-id", meta.request_id.as_str()),
    ] {
        if let Ok(value) = tonic::metadata::MetadataValue::try_from(value) {
            request.metadata_mut().insert(key, value);
        }
    }
    request
}

/// The caller as support receives it: the bearer token, checked there.
fn caller(headers: &HeaderMap) -> pb::Caller {
    let header = authorization(headers);
    let token = header
        .trim()
        .strip_prefix("Bearer ")
        .map(str::trim)
        .unwrap_or_default();
    pb::Caller {
        who: Some(pb::caller::Who::AccessToken(token.to_owned())),
    }
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
    api_error("relais-support", status, code, body, acr_values)
}

/// A JSON error answer of the hub's APIs, never stored; a 401 carries the RFC 6750
/// challenge of `realm` (§3: the scheme, and why when a token was presented), with the
/// levels to reach when the sign-in was too weak (RFC 9470).
pub(crate) fn api_error(
    realm: &str,
    status: StatusCode,
    code: &str,
    body: impl Serialize,
    acr_values: Option<&str>,
) -> Response {
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        let plain = || {
            HeaderValue::try_from(format!("Bearer realm=\"{realm}\""))
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
        };
        let challenge = match (code, acr_values) {
            ("invalid_token", _) => {
                HeaderValue::try_from(format!("Bearer realm=\"{realm}\", error=\"invalid_token\""))
                    .unwrap_or_else(|_| plain())
            }
            ("insufficient_user_authentication", Some(levels)) => HeaderValue::try_from(format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_user_authentication\", \
                 error_description=\"A stronger sign-in is needed\", acr_values=\"{levels}\""
            ))
            .unwrap_or_else(|_| plain()),
            _ => plain(),
        };
        response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
    }
    no_store(response)
}

fn no_store(mut response: Response) -> Response {
    crate::render::no_store(&mut response);
    response
}

fn failure(meta: &Meta, status: &tonic::Status) -> Response {
    use tonic::Code;
    let http = match status.code() {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::FailedPrecondition | Code::Aborted | Code::AlreadyExists => StatusCode::CONFLICT,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    if http == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(request_id = %meta.request_id, code = ?status.code(), message = status.message(), "support call failed");
        return error(
            meta,
            http,
            "service_unavailable",
            "Support is unavailable; try again shortly.",
        );
    }
    let code = relais_runtime::error_code(status).unwrap_or(match http {
        StatusCode::UNAUTHORIZED => "invalid_token",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        _ => "invalid_argument",
    });
    // Levels are acr tokens (`[A-Za-z0-9_.-]`): nothing that could break the header.
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

fn answer<T, U: Serialize>(
    meta: &Meta,
    result: Result<tonic::Response<T>, tonic::Status>,
    ok: StatusCode,
    map: impl FnOnce(T) -> U,
) -> Response {
    match result {
        Ok(response) => no_store((ok, Json(map(response.into_inner()))).into_response()),
        Err(status) => failure(meta, &status),
    }
}

fn bad_body(meta: &Meta, rejection: &JsonRejection) -> Response {
    // Over `gateway.max_body_bytes`: 413, as the OIDC routes answer.
    let status = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        StatusCode::BAD_REQUEST
    };
    error(meta, status, "invalid_request", &rejection.body_text())
}

fn bad_query(meta: &Meta, rejection: &QueryRejection) -> Response {
    error(
        meta,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &rejection.body_text(),
    )
}

/// A JSON body, or the 400 that says why not.
macro_rules! json_or_400 {
    ($meta:expr, $body:expr) => {
        match $body {
            Ok(Json(v)) => v,
            Err(rejection) => return bad_body(&$meta, &rejection),
        }
    };
}

macro_rules! query_or_400 {
    ($meta:expr, $query:expr) => {
        match $query {
            Ok(Query(v)) => v,
            Err(rejection) => return bad_query(&$meta, &rejection),
        }
    };
}

#[utoipa::path(get, path = "/tickets", tag = "tickets",
    description = "Tickets, most recent first, without their history. A contact lists their own partner's only.",
    params(TicketQuery),
    responses(
        (status = 200, body = TicketList),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)
    ))]
async fn list_tickets(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    query: Result<Query<TicketQuery>, QueryRejection>,
) -> Response {
    let q = query_or_400!(meta, query);
    let request = pb::ListTicketsRequest {
        caller: Some(caller(&headers)),
        status: q.status.unwrap_or_default(),
        partner_kind: kind_value(q.partner_kind.as_deref().unwrap_or_default()),
        partner_id: q.partner_id.unwrap_or_default(),
        limit: q.limit.unwrap_or_default(),
    };
    let result = s.support().list_tickets(outbound(&s, &meta, request)).await;
    answer(&meta, result, StatusCode::OK, |r| TicketList {
        tickets: r.tickets.into_iter().map(Ticket::from).collect(),
    })
}

#[utoipa::path(post, path = "/tickets", tag = "tickets",
    description = "Files a ticket. A contact files for their own partner; its deadlines start now.",
    request_body = NewTicket,
    responses(
        (status = 201, body = Ticket),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)
    ))]
async fn open_ticket(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    body: Result<Json<NewTicket>, JsonRejection>,
) -> Response {
    let new = json_or_400!(meta, body);
    let request = pb::OpenTicketRequest {
        caller: Some(caller(&headers)),
        partner_kind: kind_value(&new.partner_kind),
        partner_id: new.partner_id,
        scope: new.scope,
        severity: new.severity.unwrap_or_default(),
        subject: new.subject,
        body: new.body,
        attachments: new.attachments.into_iter().map(Into::into).collect(),
    };
    let result = s.support().open_ticket(outbound(&s, &meta, request)).await;
    answer(&meta, result, StatusCode::CREATED, Ticket::from)
}

#[utoipa::path(get, path = "/tickets/{id}", tag = "tickets",
    description = "A ticket with its full history.",
    params(("id" = String, Path, description = "The ticket's id")),
    responses(
        (status = 200, body = Ticket),
        (status = 401, body = ApiError), (status = 403, body = ApiError), (status = 404, body = ApiError)
    ))]
async fn get_ticket(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let request = pb::TicketRequest {
        caller: Some(caller(&headers)),
        ticket_id: id,
    };
    let result = s.support().get_ticket(outbound(&s, &meta, request)).await;
    answer(&meta, result, StatusCode::OK, Ticket::from)
}

/// A ticket change: the route, its document and its call, with or without a JSON body.
macro_rules! change {
    ($name:ident, $method:ident, $path:tt, $description:tt, $rpc:ident,
     |$caller:ident, $id:ident| $build:expr) => {
        #[utoipa::path($method, path = $path, tag = "tickets", description = $description,
            params(("id" = String, Path, description = "The ticket's id")),
            responses(
                (status = 200, body = Ticket),
                (status = 400, body = ApiError), (status = 401, body = ApiError),
                (status = 403, body = ApiError), (status = 404, body = ApiError),
                (status = 409, body = ApiError, description = "The ticket's state does not allow it now")
            ))]
        async fn $name(
            State(s): State<Shared>,
            meta: Meta,
            headers: HeaderMap,
            Path($id): Path<String>,
        ) -> Response {
            let $caller = Some(caller(&headers));
            let result = s.support().$rpc(outbound(&s, &meta, $build)).await;
            answer(&meta, result, StatusCode::OK, Ticket::from)
        }
    };
    ($name:ident, $method:ident, $path:tt, $description:tt, $rpc:ident, $body:ident,
     |$caller:ident, $id:ident, $b:ident| $build:expr) => {
        #[utoipa::path($method, path = $path, tag = "tickets", description = $description,
            params(("id" = String, Path, description = "The ticket's id")),
            request_body = $body,
            responses(
                (status = 200, body = Ticket),
                (status = 400, body = ApiError), (status = 401, body = ApiError),
                (status = 403, body = ApiError), (status = 404, body = ApiError),
                (status = 409, body = ApiError, description = "The ticket's state does not allow it now")
            ))]
        async fn $name(
            State(s): State<Shared>,
            meta: Meta,
            headers: HeaderMap,
            Path($id): Path<String>,
            body: Result<Json<$body>, JsonRejection>,
        ) -> Response {
            let $b = json_or_400!(meta, body);
            let $caller = Some(caller(&headers));
            let result = s.support().$rpc(outbound(&s, &meta, $build)).await;
            answer(&meta, result, StatusCode::OK, Ticket::from)
        }
    };
}

change!(
    acknowledge,
    post,
    "/tickets/{id}/acknowledge",
    "Staff: the ticket is taken in hand (the 48-business-hour acknowledgement).",
    acknowledge,
    |caller, ticket_id| pb::TicketRequest { caller, ticket_id }
);

change!(
    declare_blocking,
    post,
    "/tickets/{id}/blocking",
    "Staff: a blocking anomaly is taken into account; its 4-hour fix deadline starts.",
    declare_blocking,
    |caller, ticket_id| pb::TicketRequest { caller, ticket_id }
);

change!(
    comment,
    post,
    "/tickets/{id}/comments",
    "Anyone who sees the ticket. From the partner it answers a request for information, \
or is a remark that reopens a resolved ticket.",
    comment,
    Comment,
    |caller, ticket_id, c| pb::CommentRequest {
        caller,
        ticket_id,
        body: c.body,
        attachments: c.attachments.into_iter().map(Into::into).collect(),
    }
);

change!(
    request_information,
    post,
    "/tickets/{id}/information-requests",
    "Staff: asks the partner for information; without an answer for 10 business days the \
ticket closes (with a warning before).",
    request_information,
    Text,
    |caller, ticket_id, t| pb::TextRequest {
        caller,
        ticket_id,
        text: t.text
    }
);

change!(
    set_severity,
    put,
    "/tickets/{id}/severity",
    "Staff: sets the severity (1 critical … 5 information); deadlines follow.",
    set_severity,
    SeverityChange,
    |caller, ticket_id, c| pb::SetSeverityRequest {
        caller,
        ticket_id,
        severity: c.severity,
    }
);

change!(
    assign,
    put,
    "/tickets/{id}/assignee",
    "Staff: hands the ticket to a support level or role.",
    assign,
    Assignment,
    |caller, ticket_id, a| pb::AssignRequest {
        caller,
        ticket_id,
        role: a.role
    }
);

change!(
    resolve,
    post,
    "/tickets/{id}/resolution",
    "Staff: the ticket is resolved; the partner confirms, remarks, or says nothing within \
the configured delay.",
    resolve,
    Text,
    |caller, ticket_id, t| pb::TextRequest {
        caller,
        ticket_id,
        text: t.text
    }
);

change!(
    confirm_resolution,
    post,
    "/tickets/{id}/confirmation",
    "The partner (or staff recording an oral confirmation) confirms a resolved ticket, \
which closes it.",
    confirm_resolution,
    Text,
    |caller, ticket_id, t| pb::TextRequest {
        caller,
        ticket_id,
        text: t.text
    }
);

change!(
    agree_to_close,
    post,
    "/tickets/{id}/close-agreements",
    "One party's written agreement to close an unresolved ticket; it closes once both the \
partner and support agreed.",
    agree_to_close,
    Text,
    |caller, ticket_id, t| pb::TextRequest {
        caller,
        ticket_id,
        text: t.text
    }
);

#[utoipa::path(get, path = "/indicator", tag = "indicator",
    description = "Staff: the share of operating incidents resolved within the target \
business hours over a period, overall and per partner.",
    params(Period),
    responses(
        (status = 200, body = Indicator),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)
    ))]
async fn indicator(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    query: Result<Query<Period>, QueryRejection>,
) -> Response {
    let period = query_or_400!(meta, query);
    let request = pb::GetIndicatorRequest {
        caller: Some(caller(&headers)),
        from: period.from,
        to: period.to,
    };
    let result = s
        .support()
        .get_indicator(outbound(&s, &meta, request))
        .await;
    answer(&meta, result, StatusCode::OK, |i| Indicator {
        from: i.from,
        to: i.to,
        target_percent: i.target_percent,
        resolution_business_hours: i.resolution_business_hours,
        overall: i.overall.map(share),
        per_partner: i
            .per_partner
            .into_iter()
            .map(|p| PartnerShare {
                partner_kind: kind_name(p.partner_kind),
                partner_id: p.partner_id,
                share: p.share.map(share),
            })
            .collect(),
    })
}

#[utoipa::path(get, path = "/quarantined-mail", tag = "mail",
    description = "Staff: inbound mail kept aside (malformed, unknown sender, refused reply), \
the most recent first.",
    params(Limit),
    responses(
        (status = 200, body = QuarantinedMailList),
        (status = 401, body = ApiError), (status = 403, body = ApiError)
    ))]
async fn quarantined_mail(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    query: Result<Query<Limit>, QueryRejection>,
) -> Response {
    let limit = query_or_400!(meta, query);
    let request = pb::ListQuarantinedMailRequest {
        caller: Some(caller(&headers)),
        limit: limit.limit.unwrap_or_default(),
    };
    let result = s
        .support()
        .list_quarantined_mail(outbound(&s, &meta, request))
        .await;
    answer(&meta, result, StatusCode::OK, |r| QuarantinedMailList {
        mails: r
            .mails
            .into_iter()
            .map(|m| QuarantinedMail {
                id: m.id,
                received_at: m.received_at,
                sender: some(m.sender),
                reason: m.reason,
                size: m.size,
            })
            .collect(),
    })
}

#[utoipa::path(post, path = "/mail", tag = "mail",
    description = "The mail gateway posts one raw RFC 5322 message (`message/rfc822`), \
authenticated by the deployment's mail intake secret as a bearer token. It opens a ticket, \
is a reply on its thread (In-Reply-To, References), or is kept aside with the reason; \
never dropped.",
    request_body(content = String, content_type = "message/rfc822"),
    responses(
        (status = 200, body = MailReceipt),
        (status = 401, body = ApiError), (status = 403, body = ApiError),
        (status = 413, body = ApiError, description = "Larger than 3 MiB")
    ))]
async fn submit_mail(
    State(s): State<Shared>,
    meta: Meta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let raw: Bytes = match axum::body::to_bytes(body, MAX_MAIL_BYTES).await {
        Ok(raw) => raw,
        Err(_) => {
            return error(
                &meta,
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "The message is larger than 3 MiB.",
            );
        }
    };
    let secret = match caller(&headers).who {
        Some(pb::caller::Who::AccessToken(token)) => token,
        _ => String::new(),
    };
    let request = pb::SubmitMailRequest {
        raw: raw.to_vec(),
        intake_secret: secret,
    };
    let result = s.support().submit_mail(outbound(&s, &meta, request)).await;
    answer(&meta, result, StatusCode::OK, |r| MailReceipt {
        outcome: r.outcome,
        ticket_id: some(r.ticket_id),
        quarantine_id: some(r.quarantine_id),
        reason: some(r.reason),
    })
}

/// The OpenAPI document of the routes above.
pub(crate) fn document(openapi: &utoipa::openapi::OpenApi) -> Response {
    match openapi.to_json() {
        Ok(json) => (
            StatusCode::OK,
            [
                (CONTENT_TYPE, "application/json"),
                (CACHE_CONTROL, "public, max-age=300"),
            ],
            json,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Any other path under the API: a JSON 404, not a page.
pub(crate) async fn not_found(meta: Meta) -> Response {
    error(
        &meta,
        StatusCode::NOT_FOUND,
        "not_found",
        "No such support API route; see /api/support/v1/openapi.json.",
    )
}
