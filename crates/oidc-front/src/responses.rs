//! Building what the gateway renders: redirects, pages and JSON answers.

use relais_proto::oidc_front::v1 as pb;
use serde_json::{Value, json};

use crate::domain::types::Locale;
use crate::error::FrontError;

pub fn redirect(url: String) -> pb::FlowResponse {
    pb::FlowResponse {
        outcome: Some(pb::flow_response::Outcome::Redirect(pb::Redirect { url })),
        ..Default::default()
    }
}

pub fn error_page(err: &FrontError, locale: Locale, request_id: &str) -> pb::FlowResponse {
    log_failure(err, request_id);
    pb::FlowResponse {
        outcome: Some(pb::flow_response::Outcome::Error(pb::ErrorPage {
            code: err.code(),
            message: err.message(locale),
            request_id: request_id.to_string(),
            http_status: u32::from(err.info().http_status),
            locale: locale.as_str().to_string(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

pub fn notice(code: &str, message: &str, locale: Locale) -> pb::FlowResponse {
    pb::FlowResponse {
        outcome: Some(pb::flow_response::Outcome::Notice(pb::Notice {
            code: code.to_string(),
            message: message.to_string(),
            locale: locale.as_str().to_string(),
        })),
        ..Default::default()
    }
}

/// `uri` with extra query parameters, keeping the ones it has.
pub fn with_query(uri: &str, pairs: &[(&str, &str)]) -> Result<String, FrontError> {
    let mut url = url::Url::parse(uri)
        .map_err(|_| FrontError::Internal("registered URI does not parse".into()))?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    Ok(url.into())
}

/// An OIDC error sent back to the SP's redirect URI (with `iss`, RFC 9207).
pub fn error_redirect(
    err: &FrontError,
    redirect_uri: &str,
    state: Option<&str>,
    issuer: &str,
    request_id: &str,
) -> pb::FlowResponse {
    log_failure(err, request_id);
    let info = err.info();
    let description = err.description();
    let mut pairs = vec![
        ("error", info.oauth),
        ("error_description", description.as_str()),
    ];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", issuer));
    match with_query(redirect_uri, &pairs) {
        Ok(url) => redirect(url),
        Err(e) => error_page(&e, Locale::Fr, request_id),
    }
}

pub fn json_ok(body: &Value) -> pb::ApiResponse {
    pb::ApiResponse {
        http_status: 200,
        content_type: "application/json".into(),
        body: body.to_string(),
        www_authenticate: String::new(),
        retry_after_seconds: 0,
    }
}

/// An RFC 6749 §5.2 / RFC 6750 §3 error.
pub fn json_error(err: &FrontError, challenge: Option<&str>, request_id: &str) -> pb::ApiResponse {
    log_failure(err, request_id);
    let info = err.info();
    let status = match info.http_status {
        // Token and userinfo errors are 400 unless the client must authenticate.
        401 | 429 | 503 | 500 => info.http_status,
        403 if info.oauth == "unauthorized_client" => 400,
        _ => 400,
    };
    let www_authenticate = match challenge {
        Some(scheme) if status == 401 => {
            if scheme == "Bearer" && info.oauth == "invalid_token" {
                format!(
                    "Bearer realm=\"relais\", error=\"invalid_token\", error_description=\"{}\"",
                    err
                )
            } else {
                format!("{scheme} realm=\"relais\"")
            }
        }
        // RFC 6750 §3.1: a malformed resource request says so in its challenge too.
        Some("Bearer") if info.oauth == "invalid_request" => {
            "Bearer realm=\"relais\", error=\"invalid_request\"".to_owned()
        }
        _ => String::new(),
    };
    pb::ApiResponse {
        http_status: u32::from(status),
        content_type: "application/json".into(),
        body: json!({
            "error": info.oauth,
            "error_description": err.description(),
            "error_code": err.code(),
            "request_id": request_id,
        })
        .to_string(),
        www_authenticate,
        retry_after_seconds: match err {
            FrontError::ClientBlocked(secs) => *secs,
            _ => 0,
        },
    }
}

fn log_failure(err: &FrontError, request_id: &str) {
    match err {
        FrontError::Unavailable(detail) | FrontError::Internal(detail) => {
            tracing::error!(code = %err.code(), request_id, detail = %detail, "request failed")
        }
        _ => tracing::info!(code = %err.code(), request_id, "request refused"),
    }
}
