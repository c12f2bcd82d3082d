//! One sign-in as a browser and an SP back end would do it, hop by hop, each hop timed
//! and checked: SP /authorize → chooser → POST /chooser → IdP login form → IdP callback
//! → /token → /userinfo.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use reqwest::header::{HeaderValue, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use crate::stack::Sp;

/// The timed hops of a sign-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Authorize,
    Chooser,
    IdpAuthorize,
    IdpLogin,
    Callback,
    Token,
    Userinfo,
}

impl Step {
    pub const ALL: [Step; 7] = [
        Step::Authorize,
        Step::Chooser,
        Step::IdpAuthorize,
        Step::IdpLogin,
        Step::Callback,
        Step::Token,
        Step::Userinfo,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Authorize => "authorize",
            Step::Chooser => "chooser",
            Step::IdpAuthorize => "idp_authorize",
            Step::IdpLogin => "idp_login",
            Step::Callback => "callback",
            Step::Token => "token",
            Step::Userinfo => "userinfo",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a flow stopped: the hop, a short kind (the key errors are counted under) and a
/// sample of what was received.
#[derive(Debug)]
pub struct FlowError {
    pub step: Step,
    pub kind: String,
    pub detail: String,
}

impl FlowError {
    pub fn key(&self) -> String {
        format!("{}:{}", self.step.name(), self.kind)
    }

    fn new(step: Step, kind: impl Into<String>, detail: impl Into<String>) -> FlowError {
        let mut detail: String = detail.into();
        if detail.len() > 300 {
            let mut cut = 300;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
        }
        FlowError {
            step,
            kind: kind.into(),
            detail,
        }
    }

    fn transport(step: Step, e: &reqwest::Error) -> FlowError {
        let kind = if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "connect"
        } else {
            "transport"
        };
        FlowError::new(step, kind, e.to_string())
    }
}

/// Durations of the hops done so far, in [`Step`] order.
pub type Timings = [Option<Duration>; 7];

/// 32 random bytes, base64url: what a good SP sends as state and nonce, and keeps as
/// its PKCE verifier.
pub fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The S256 challenge of a PKCE verifier (RFC 7636 §4.2): one SHA-256, cheap.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A browser: its connections are kept across sign-ins, its cookies are not (each
/// sign-in is a fresh private window). Cookies are kept per host and port.
pub struct Browser {
    http: reqwest::Client,
    jar: Vec<(String, String, String)>,
}

/// A client for browsers or SP back ends: no redirects followed, generous timeout.
pub fn http_client(idle_per_host: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(idle_per_host)
        .build()?)
}

fn authority(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

impl Browser {
    pub fn new() -> anyhow::Result<Browser> {
        Ok(Browser {
            http: http_client(2)?,
            jar: Vec::new(),
        })
    }

    fn cookie_header(&self, url: &Url) -> Option<String> {
        let host = authority(url);
        let pairs: Vec<String> = self
            .jar
            .iter()
            .filter(|(h, _, _)| *h == host)
            .map(|(_, n, v)| format!("{n}={v}"))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn store_cookies(&mut self, response: &Response) {
        let host = authority(response.url());
        for value in response.headers().get_all(SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let mut parts = text.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
                continue;
            };
            let removed =
                value.is_empty() || parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            self.jar.retain(|(h, n, _)| !(*h == host && n == name));
            if !removed {
                self.jar
                    .push((host.clone(), name.to_string(), value.to_string()));
            }
        }
    }

    async fn send(
        &mut self,
        step: Step,
        request: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<Response, FlowError> {
        let request = match self.cookie_header(url) {
            Some(c) => request.header(reqwest::header::COOKIE, c),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| FlowError::transport(step, &e))?;
        self.store_cookies(&response);
        Ok(response)
    }

    async fn get(&mut self, step: Step, url: Url) -> Result<Response, FlowError> {
        let request = self.http.get(url.clone());
        self.send(step, request, &url).await
    }

    async fn post_form(
        &mut self,
        step: Step,
        url: Url,
        form: &[(&str, &str)],
    ) -> Result<Response, FlowError> {
        let request = self.http.post(url.clone()).form(form);
        self.send(step, request, &url).await
    }
}

async fn body(step: Step, response: Response) -> Result<String, FlowError> {
    response
        .text()
        .await
        .map_err(|e| FlowError::transport(step, &e))
}

/// `http_<status>`, with the hub's error code when the body is its error page.
fn status_kind(status: StatusCode, body: &str) -> String {
    let marker = "class=\"code\">";
    let code = body.find(marker).and_then(|i| {
        let rest = &body[i + marker.len()..];
        rest.find('<').map(|end| &rest[..end])
    });
    match code {
        Some(c) if !c.is_empty() => format!("http_{}_{c}", status.as_u16()),
        _ => format!("http_{}", status.as_u16()),
    }
}

/// A page expected with 200: its HTML, or the error.
async fn page(step: Step, response: Response) -> Result<String, FlowError> {
    let status = response.status();
    let text = body(step, response).await?;
    if status != StatusCode::OK {
        return Err(FlowError::new(step, status_kind(status, &text), text));
    }
    Ok(text)
}

/// A redirect expected: where to, resolved against the request's URL.
async fn redirect(step: Step, response: Response) -> Result<Url, FlowError> {
    let status = response.status();
    if !status.is_redirection() {
        let text = body(step, response).await?;
        return Err(FlowError::new(step, status_kind(status, &text), text));
    }
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .ok_or_else(|| FlowError::new(step, "no_location", ""))?;
    response
        .url()
        .join(location)
        .map_err(|e| FlowError::new(step, "bad_location", format!("{location}: {e}")))
}

/// The value of the `<input>` named `name`, whatever the attribute order.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let wanted = format!("name=\"{name}\"");
    let mut rest = html;
    while let Some(start) = rest.find("<input") {
        let after = &rest[start..];
        let end = after.find('>')?;
        let tag = &after[..end];
        if tag.contains(&wanted) {
            let v = tag.find("value=\"")? + "value=\"".len();
            let len = tag[v..].find('"')?;
            return Some(tag[v..v + len].replace("&amp;", "&"));
        }
        rest = &after[end..];
    }
    None
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// What the flow is about: the hub, the IdP, the SP, the IdP chosen and the identity.
pub struct Target<'a> {
    pub hub: &'a str,
    pub idp_issuer: &'a str,
    pub sp: &'a Sp,
    pub idp_id: &'a str,
    pub identity: &'a str,
}

/// The authorization response the browser brought back to the SP, with what the SP
/// kept of its request.
pub struct Code {
    pub code: String,
    pub nonce: String,
    /// The PKCE verifier of the request's S256 challenge.
    pub verifier: String,
}

fn timed<T>(timings: &mut Timings, step: Step, started: Instant, out: T) -> T {
    timings[step.index()] = Some(started.elapsed());
    out
}

fn url(step: Step, text: &str) -> Result<Url, FlowError> {
    Url::parse(text).map_err(|e| FlowError::new(step, "bad_url", format!("{text}: {e}")))
}

/// The SP's authorization request, PKCE S256 for `verifier`, with `extra` parameters.
fn authorize_url(
    t: &Target<'_>,
    state: &str,
    nonce: &str,
    verifier: &str,
    extra: &[(&str, &str)],
) -> Result<Url, FlowError> {
    let mut authorize = url(Step::Authorize, &format!("{}/authorize", t.hub))?;
    {
        let mut q = authorize.query_pairs_mut();
        q.append_pair("client_id", &t.sp.client_id)
            .append_pair("redirect_uri", &t.sp.redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", t.sp.scope())
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &s256(verifier))
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    Ok(authorize)
}

/// The browser's part: from the SP's redirect to /authorize to the code at the SP.
pub async fn browse_to_code(
    browser: &mut Browser,
    t: &Target<'_>,
    timings: &mut Timings,
) -> Result<Code, FlowError> {
    browser.jar.clear();
    let state = random();
    let nonce = random();
    let verifier = random();

    let step = Step::Authorize;
    let started = Instant::now();
    let authorize = authorize_url(t, &state, &nonce, &verifier, &[])?;
    let chooser = page(step, browser.get(step, authorize).await?).await?;
    let csrf = input_value(&chooser, "csrf")
        .ok_or_else(|| FlowError::new(step, "no_csrf", chooser.clone()))?;
    if !chooser.contains(&format!("value=\"{}\"", t.idp_id)) {
        return Err(FlowError::new(step, "idp_not_listed", chooser));
    }
    timed(timings, step, started, ());

    let step = Step::Chooser;
    let started = Instant::now();
    let choose = url(step, &format!("{}/chooser", t.hub))?;
    let response = browser
        .post_form(step, choose, &[("csrf", &csrf), ("idp", t.idp_id)])
        .await?;
    let at_idp = redirect(step, response).await?;
    if !at_idp.as_str().starts_with(t.idp_issuer) {
        return Err(FlowError::new(step, "not_to_idp", at_idp.to_string()));
    }
    timed(timings, step, started, ());

    let step = Step::IdpAuthorize;
    let started = Instant::now();
    let login = page(step, browser.get(step, at_idp).await?).await?;
    let request_id = input_value(&login, "request_id")
        .ok_or_else(|| FlowError::new(step, "no_request_id", login.clone()))?;
    timed(timings, step, started, ());

    let step = Step::IdpLogin;
    let started = Instant::now();
    let login_url = url(step, &format!("{}/authorize/login", t.idp_issuer))?;
    let response = browser
        .post_form(
            step,
            login_url,
            &[
                ("request_id", &request_id),
                ("identity", t.identity),
                ("scenario", "none"),
                ("action", "login"),
            ],
        )
        .await?;
    let callback = redirect(step, response).await?;
    if !callback
        .as_str()
        .starts_with(&format!("{}/idp/callback", t.hub))
    {
        return Err(FlowError::new(step, "not_to_hub", callback.to_string()));
    }
    timed(timings, step, started, ());

    let step = Step::Callback;
    let started = Instant::now();
    let response = browser.get(step, callback).await?;
    let at_sp = redirect(step, response).await?;
    let code = code_at_sp(step, &at_sp, t, &state)?;
    timed(timings, step, started, ());
    Ok(Code {
        code,
        nonce,
        verifier,
    })
}

/// A single sign-on: the browser's hub session (kept from an earlier sign-in) answers
/// /authorize with the code at once, no chooser and no IdP.
pub async fn browse_to_code_by_sso(
    browser: &mut Browser,
    t: &Target<'_>,
    timings: &mut Timings,
) -> Result<Code, FlowError> {
    let state = random();
    let nonce = random();
    let verifier = random();
    let step = Step::Authorize;
    let started = Instant::now();
    let authorize = authorize_url(t, &state, &nonce, &verifier, &[("prompt", "none")])?;
    let response = browser.get(step, authorize).await?;
    let at_sp = redirect(step, response).await?;
    let code = code_at_sp(step, &at_sp, t, &state)?;
    timed(timings, step, started, ());
    Ok(Code {
        code,
        nonce,
        verifier,
    })
}

/// The code of an authorization response at the SP, its `state` and `iss` checked.
fn code_at_sp(step: Step, at_sp: &Url, t: &Target<'_>, state: &str) -> Result<String, FlowError> {
    if !at_sp.as_str().starts_with(&t.sp.redirect_uri) {
        return Err(FlowError::new(step, "not_to_sp", at_sp.to_string()));
    }
    if let Some(error) = query(at_sp, "error") {
        return Err(FlowError::new(
            step,
            format!("oauth_{error}"),
            at_sp.to_string(),
        ));
    }
    if query(at_sp, "state").as_deref() != Some(state) {
        return Err(FlowError::new(step, "state_mismatch", at_sp.to_string()));
    }
    if query(at_sp, "iss").as_deref() != Some(t.hub) {
        return Err(FlowError::new(step, "iss_mismatch", at_sp.to_string()));
    }
    query(at_sp, "code").ok_or_else(|| FlowError::new(step, "no_code", at_sp.to_string()))
}

/// What the SP got from /token.
pub struct Tokens {
    pub access_token: String,
    pub sub: String,
    /// The hub session of the sign-in, which the trace store keeps with the connection.
    pub sid: String,
}

fn claims_of(step: Step, id_token: &str) -> Result<serde_json::Map<String, Value>, FlowError> {
    let payload = id_token
        .split('.')
        .nth(1)
        .ok_or_else(|| FlowError::new(step, "bad_id_token", id_token.to_string()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| FlowError::new(step, "bad_id_token", id_token.to_string()))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| FlowError::new(step, "bad_id_token", id_token.to_string()))
}

fn text_of(map: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    map.get(name).and_then(Value::as_str).map(str::to_string)
}

async fn json(step: Step, response: Response) -> Result<serde_json::Map<String, Value>, FlowError> {
    let status = response.status();
    let text = body(step, response).await?;
    if status != StatusCode::OK {
        let kind = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .map_or_else(
                || format!("http_{}", status.as_u16()),
                |e| format!("http_{}_{e}", status.as_u16()),
            );
        return Err(FlowError::new(step, kind, text));
    }
    serde_json::from_str(&text).map_err(|_| FlowError::new(step, "not_json", text))
}

/// The SP back end redeems the code (client_secret_basic, with its PKCE verifier) and
/// checks the ID token's nonce and audience (not its signature: that is the SP's cost,
/// not the hub's).
pub async fn redeem(
    sp_http: &reqwest::Client,
    hub: &str,
    sp: &Sp,
    code: &Code,
    timings: &mut Timings,
) -> Result<Tokens, FlowError> {
    let step = Step::Token;
    let started = Instant::now();
    let response = sp_http
        .post(format!("{hub}/token"))
        .basic_auth(&sp.client_id, Some(&sp.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.code.as_str()),
            ("redirect_uri", sp.redirect_uri.as_str()),
            ("code_verifier", code.verifier.as_str()),
        ])
        .send()
        .await
        .map_err(|e| FlowError::transport(step, &e))?;
    let body = json(step, response).await?;
    let id_token = text_of(&body, "id_token")
        .ok_or_else(|| FlowError::new(step, "no_id_token", format!("{body:?}")))?;
    let access_token = text_of(&body, "access_token")
        .ok_or_else(|| FlowError::new(step, "no_access_token", format!("{body:?}")))?;
    let claims = claims_of(step, &id_token)?;
    if text_of(&claims, "nonce").as_deref() != Some(code.nonce.as_str()) {
        return Err(FlowError::new(
            step,
            "nonce_mismatch",
            format!("{claims:?}"),
        ));
    }
    if text_of(&claims, "aud").as_deref() != Some(sp.client_id.as_str()) {
        return Err(FlowError::new(step, "aud_mismatch", format!("{claims:?}")));
    }
    let sub = text_of(&claims, "sub")
        .ok_or_else(|| FlowError::new(step, "no_sub", format!("{claims:?}")))?;
    let sid = text_of(&claims, "sid")
        .ok_or_else(|| FlowError::new(step, "no_sid", format!("{claims:?}")))?;
    timed(
        timings,
        step,
        started,
        Ok(Tokens {
            access_token,
            sub,
            sid,
        }),
    )
}

/// The SP back end asks /userinfo; the subject must be the ID token's.
pub async fn userinfo(
    sp_http: &reqwest::Client,
    hub: &str,
    tokens: &Tokens,
    timings: &mut Timings,
) -> Result<(), FlowError> {
    let step = Step::Userinfo;
    let started = Instant::now();
    let response = sp_http
        .get(format!("{hub}/userinfo"))
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .map_err(|e| FlowError::transport(step, &e))?;
    let body = json(step, response).await?;
    if text_of(&body, "sub").as_deref() != Some(tokens.sub.as_str()) {
        return Err(FlowError::new(step, "sub_mismatch", format!("{body:?}")));
    }
    timed(timings, step, started, Ok(()))
}

/// A whole sign-in; its hub session id on success.
pub async fn sign_in(
    browser: &mut Browser,
    sp_http: &reqwest::Client,
    t: &Target<'_>,
    timings: &mut Timings,
) -> Result<String, FlowError> {
    let code = browse_to_code(browser, t, timings).await?;
    let tokens = redeem(sp_http, t.hub, t.sp, &code, timings).await?;
    userinfo(sp_http, t.hub, &tokens, timings).await?;
    Ok(tokens.sid)
}

/// A sign-in by single sign-on from the browser's hub session; its session id.
pub async fn sso_sign_in(
    browser: &mut Browser,
    sp_http: &reqwest::Client,
    t: &Target<'_>,
    timings: &mut Timings,
) -> Result<String, FlowError> {
    let code = browse_to_code_by_sso(browser, t, timings).await?;
    let tokens = redeem(sp_http, t.hub, t.sp, &code, timings).await?;
    userinfo(sp_http, t.hub, &tokens, timings).await?;
    Ok(tokens.sid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_errors_by_the_hub_code() {
        let page = r#"<dd><code class="code">idp_unavailable</code></dd>"#;
        assert_eq!(
            status_kind(StatusCode::BAD_GATEWAY, page),
            "http_502_idp_unavailable"
        );
        assert_eq!(status_kind(StatusCode::NOT_FOUND, "nothing"), "http_404");
    }

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        // RFC 7636 appendix B.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(random().len(), 43);
    }

    #[test]
    fn finds_inputs_whatever_the_attribute_order() {
        let html = r#"<form><input type="hidden" value="a&amp;b" name="csrf">
            <input name="request_id" type="hidden" value="r1"></form>"#;
        assert_eq!(input_value(html, "csrf").as_deref(), Some("a&b"));
        assert_eq!(input_value(html, "request_id").as_deref(), Some("r1"));
        assert_eq!(input_value(html, "other"), None);
    }
}
