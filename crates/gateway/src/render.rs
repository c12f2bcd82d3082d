//! Turning oidc-front's answers, and the gateway's own errors, into HTTP responses.

use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, PRAGMA, SET_COOKIE, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use relais_proto::oidc_front::v1::flow_response::Outcome;
use relais_proto::oidc_front::v1::{ApiResponse, CookieUpdate, FlowResponse, Json};

use crate::error::GatewayError;
use crate::pages::{self, Locale};
use crate::request::{FLOW_COOKIE, Meta, SESSION_COOKIE, cookie_name};

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

/// A redirect, the chooser, the logout confirmation, a notice or an error page, with the cookie changes oidc-front asked for.
pub(crate) fn flow(
    answer: FlowResponse,
    meta: &Meta,
    secure_cookies: bool,
) -> Result<Response, GatewayError> {
    let mut response = match answer.outcome {
        Some(Outcome::Redirect(redirect)) => {
            let location = HeaderValue::try_from(redirect.url)
                .map_err(|_| bad_answer("a redirect URL that is not a valid header"))?;
            let mut response = StatusCode::SEE_OTHER.into_response();
            response.headers_mut().insert(LOCATION, location);
            response
        }
        Some(Outcome::Chooser(chooser)) => html(StatusCode::OK, pages::chooser(&chooser)),
        Some(Outcome::Error(page)) => {
            let status = u16::try_from(page.http_status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let request_id = if page.request_id.is_empty() {
                &meta.request_id
            } else {
                &page.request_id
            };
            html(
                status,
                pages::error(
                    Locale::from_backend(&page.locale),
                    &page.code,
                    &page.message,
                    request_id,
                    pages::WaysOut {
                        back_url: &page.back_url,
                        sp_name: &page.sp_name,
                        retry_url: &page.retry_url,
                    },
                ),
            )
        }
        Some(Outcome::Notice(notice)) => html(StatusCode::OK, pages::notice(&notice)),
        Some(Outcome::LogoutConfirm(confirm)) => {
            html(StatusCode::OK, pages::logout_confirm(&confirm))
        }
        None => return Err(bad_answer("a flow answer without an outcome")),
    };
    let cookies = [
        (FLOW_COOKIE, answer.flow_cookie),
        (SESSION_COOKIE, answer.session_cookie),
    ];
    for (name, update) in cookies {
        if let Some(update) = update {
            let header = set_cookie(&cookie_name(name, secure_cookies), &update, secure_cookies)?;
            response.headers_mut().append(SET_COOKIE, header);
        }
    }
    no_store(&mut response);
    Ok(response)
}

/// A JSON API answer (token, userinfo) exactly as oidc-front wrote it.
pub(crate) fn api(answer: ApiResponse) -> Result<Response, GatewayError> {
    let status = u16::try_from(answer.http_status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .filter(|s| !s.is_informational())
        .ok_or_else(|| bad_answer("an API answer with an invalid HTTP status"))?;
    let content_type = if answer.content_type.is_empty() {
        HeaderValue::from_static(JSON)
    } else {
        HeaderValue::try_from(answer.content_type)
            .map_err(|_| bad_answer("an invalid content type"))?
    };
    let mut response = (status, answer.body).into_response();
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    if !answer.www_authenticate.is_empty() {
        let challenge = HeaderValue::try_from(answer.www_authenticate)
            .map_err(|_| bad_answer("an invalid WWW-Authenticate header"))?;
        response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
    }
    if answer.retry_after_seconds > 0 {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(answer.retry_after_seconds),
        );
    }
    no_store(&mut response);
    Ok(response)
}

/// Discovery and JWKS: public documents that clients may cache for a while (the front
/// says how long for the JWKS: it publishes a new key that long before signing with it).
pub(crate) fn public_json(doc: Json) -> Response {
    let max_age = if doc.max_age_seconds == 0 {
        300
    } else {
        doc.max_age_seconds
    };
    let cache = HeaderValue::from_str(&format!("public, max-age={max_age}"))
        .unwrap_or_else(|_| HeaderValue::from_static("public, max-age=300"));
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, HeaderValue::from_static(JSON)),
            (CACHE_CONTROL, cache),
        ],
        doc.json,
    )
        .into_response()
}

/// The error page for a failure of the gateway's own.
pub(crate) fn error_page(meta: &Meta, err: &GatewayError) -> Response {
    log(meta, err);
    let code = err.page_code();
    let message = pages::gateway_message(meta.locale, code);
    let mut response = html(
        err.status(),
        pages::error(
            meta.locale,
            code,
            message,
            &meta.request_id,
            pages::WaysOut::default(),
        ),
    );
    no_store(&mut response);
    response
}

/// The OAuth JSON error for a failure of the gateway's own on an API route.
pub(crate) fn error_json(meta: &Meta, err: &GatewayError) -> Response {
    log(meta, err);
    let body = serde_json::json!({
        "error": err.oauth_code(),
        "error_description": pages::gateway_message(Locale::En, err.page_code()),
        "request_id": meta.request_id,
    });
    let mut response = (
        err.status(),
        [(CONTENT_TYPE, HeaderValue::from_static(JSON))],
        body.to_string(),
    )
        .into_response();
    no_store(&mut response);
    response
}

fn log(meta: &Meta, err: &GatewayError) {
    match err {
        GatewayError::Malformed(_) | GatewayError::NotFound => {
            tracing::debug!(request_id = %meta.request_id, error = %err, "request refused");
        }
        _ => tracing::warn!(request_id = %meta.request_id, error = %err, "request failed"),
    }
}

pub(crate) fn html(status: StatusCode, page: askama::Result<String>) -> Response {
    match page {
        Ok(body) => (
            status,
            [(CONTENT_TYPE, HeaderValue::from_static(HTML))],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "page rendering failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

pub(crate) fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

pub(crate) fn set_cookie(
    name: &str,
    update: &CookieUpdate,
    secure: bool,
) -> Result<HeaderValue, GatewayError> {
    let mut cookie = if update.remove || update.value.is_empty() {
        format!("{name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    } else {
        // A `;` or a space would let the value add attributes of its own.
        if !update.value.bytes().all(is_cookie_octet) {
            return Err(bad_answer(
                "a cookie value with characters a cookie cannot carry",
            ));
        }
        let mut cookie = format!("{name}={}", update.value);
        if update.max_age_seconds > 0 {
            cookie.push_str(&format!("; Max-Age={}", update.max_age_seconds));
        }
        cookie
    };
    cookie.push_str("; Path=/; HttpOnly; SameSite=Lax");
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::try_from(cookie).map_err(|_| bad_answer("a cookie that is not a valid header"))
}

/// RFC 6265 `cookie-octet`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

fn bad_answer(what: &str) -> GatewayError {
    GatewayError::BackendAnswer(what.to_string())
}
