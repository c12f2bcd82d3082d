//! Reading requests: parameters exactly as sent, cookies, the body within its limit, and
//! where the request came from.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use http::header::{ACCEPT_LANGUAGE, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, USER_AGENT};
use http::request::Parts;
use http::{HeaderMap, Uri};
use relais_proto::oidc_front::v1::{Param, Source};

use crate::error::GatewayError;
use crate::forwarded::Forwarding;
use crate::pages::Locale;

pub(crate) const FLOW_COOKIE: &str = "relais_flow";
pub(crate) const SESSION_COOKIE: &str = "relais_session";

/// A cookie's name as this gateway sets it: over https with the `__Host-` prefix, which a
/// browser only accepts `Secure`, on `/`, without `Domain`, from this very host, so no
/// sibling subdomain or plain-http page can plant or overwrite it. Over plain http (a
/// loopback development set-up) a browser would refuse the prefix: the bare name.
pub(crate) fn cookie_name(name: &'static str, https: bool) -> std::borrow::Cow<'static, str> {
    if https {
        format!("__Host-{name}").into()
    } else {
        name.into()
    }
}

/// What the gateway knows about a request before routing it; set by a middleware so
/// that every response, including 404s and timeouts, can name the request.
#[derive(Clone, Debug)]
pub(crate) struct Meta {
    pub(crate) request_id: String,
    pub(crate) source: Source,
    /// Language for the gateway's own pages (the backend chooses for its pages).
    pub(crate) locale: Locale,
}

impl Meta {
    pub(crate) fn new(headers: &HeaderMap, peer: SocketAddr, forwarding: &Forwarding) -> Self {
        let request_id = uuid::Uuid::new_v4().to_string();
        let client = forwarding.client(headers, peer);
        let accept_language = header_text(headers, ACCEPT_LANGUAGE);
        Meta {
            locale: Locale::from_accept_language(&accept_language),
            source: Source {
                ip: client.ip().to_string(),
                port: u32::from(client.port()),
                request_id: request_id.clone(),
                user_agent: header_text(headers, USER_AGENT),
                accept_language,
            },
            request_id,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // The middleware always sets it; a fresh one keeps a handler usable without it.
        Ok(parts.extensions.get::<Meta>().cloned().unwrap_or_else(|| {
            Meta::new(
                &parts.headers,
                SocketAddr::from(([0, 0, 0, 0], 0)),
                &Forwarding::default(),
            )
        }))
    }
}

fn header_text(headers: &HeaderMap, name: http::header::HeaderName) -> String {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

/// The raw `Authorization` header, passed on untouched for oidc-front to check.
pub(crate) fn authorization(headers: &HeaderMap) -> String {
    header_text(headers, http::header::AUTHORIZATION)
}

/// The cookie named `name`, or an empty string when it is absent or sent more than once:
/// a second value is one another page planted (cookie tossing from a sibling host or over
/// plain http, sent first for a longer path), and neither can be told to be the hub's.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> String {
    let mut values = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v);
    match (values.next(), values.next()) {
        (Some(v), None) => v.to_string(),
        _ => String::new(),
    }
}

pub(crate) fn query_params(uri: &Uri) -> Result<Vec<Param>, GatewayError> {
    parse_urlencoded(uri.query().unwrap_or("").as_bytes())
}

/// Reads a form body within `limit` bytes and decodes its parameters.
pub(crate) async fn form_params(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Vec<Param>, GatewayError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(GatewayError::Malformed("the request body is too large"));
    }
    let bytes: Bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| GatewayError::Malformed("the request body is too large or incomplete"))?;
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(GatewayError::Malformed(
            "the request body is not application/x-www-form-urlencoded",
        ));
    }
    parse_urlencoded(&bytes)
}

/// `application/x-www-form-urlencoded` decoding that keeps order and duplicates and,
/// unlike lenient decoders, refuses bad escapes and non-UTF-8 rather than guessing.
pub(crate) fn parse_urlencoded(input: &[u8]) -> Result<Vec<Param>, GatewayError> {
    input
        .split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            Ok(Param {
                name: percent_decode(name)?,
                value: percent_decode(value)?,
            })
        })
        .collect()
}

fn percent_decode(input: &[u8]) -> Result<String, GatewayError> {
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(|h| hex_value(*h));
                let lo = bytes.next().and_then(|l| hex_value(*l));
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err(GatewayError::Malformed("a parameter has a bad % escape")),
                }
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| GatewayError::Malformed("a parameter is not UTF-8"))
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The first value of `name`, or an empty string (oidc-front decides if it is missing).
pub(crate) fn first(params: &[Param], name: &str) -> String {
    params
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.value.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One value per name: a planted second value (in the same header or another) makes
    /// the cookie unread, never the first or the last one chosen.
    #[test]
    fn a_cookie_sent_twice_is_not_read() {
        let headers = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(COOKIE, http::HeaderValue::from_str(v).unwrap());
            }
            h
        };
        assert_eq!(
            cookie(&headers(&["a=1; relais_session=s1"]), "relais_session"),
            "s1"
        );
        assert_eq!(
            cookie(
                &headers(&["relais_session=planted; relais_session=s1"]),
                "relais_session"
            ),
            ""
        );
        assert_eq!(
            cookie(
                &headers(&["relais_session=planted", "relais_session=s1"]),
                "relais_session"
            ),
            ""
        );
        assert_eq!(
            cookie(&headers(&["relais_sessionx=1"]), "relais_session"),
            ""
        );
    }

    fn pairs(input: &str) -> Vec<(String, String)> {
        parse_urlencoded(input.as_bytes())
            .unwrap()
            .into_iter()
            .map(|p| (p.name, p.value))
            .collect()
    }

    #[test]
    fn keeps_order_duplicates_and_decodes() {
        assert_eq!(
            pairs("b=1&a=x+y&&b=%C3%A9&flag&e="),
            vec![
                ("b".into(), "1".into()),
                ("a".into(), "x y".into()),
                ("b".into(), "é".into()),
                ("flag".into(), "".into()),
                ("e".into(), "".into()),
            ]
        );
    }

    #[test]
    fn refuses_bad_escapes_and_non_utf8() {
        assert!(parse_urlencoded(b"a=%zz").is_err());
        assert!(parse_urlencoded(b"a=%4").is_err());
        assert!(parse_urlencoded(b"a=%ff%fe").is_err());
    }

    #[test]
    fn reads_the_named_cookie() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, "a=1; relais_flow=abc".parse().unwrap());
        assert_eq!(cookie(&h, FLOW_COOKIE), "abc");
        assert_eq!(cookie(&h, SESSION_COOKIE), "");
        // A second value, in another header: neither is read.
        h.append(COOKIE, "relais_flow=second".parse().unwrap());
        assert_eq!(cookie(&h, FLOW_COOKIE), "");
    }
}
