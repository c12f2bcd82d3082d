//! Parsing and validation of authorization requests, parameter by parameter.

use relais_proto::registry::v1::ServiceProvider;
use serde_json::Value;

use crate::domain::acr::{Acr, AcrLadder};
use crate::domain::types::{ClientId, Locale, RedirectUri, Scope};
use crate::error::FrontError;

const MAX_PARAM_LEN: usize = 2048;
/// Most parameters a request may carry: no endpoint of the hub takes half as many, and
/// each one is looked up by name, so a request of thousands costs nothing past this.
pub const MAX_PARAMS: usize = 64;
/// 256 bits in base64url: the terms' minimum, unless the SP is registered with less.
pub const MIN_RANDOM_LEN: usize = 43;

/// What `prompt` asks of the sign-in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prompt {
    /// Answer from the hub session or fail: never show a page.
    pub none: bool,
    /// Authenticate again at the IdP, whatever the session.
    pub login: bool,
}

/// Request parameters as received, duplicates kept.
#[derive(Clone, Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Params(pairs)
    }

    /// The value of a parameter that may appear at most once; empty counts as absent.
    pub fn single(&self, name: &str) -> Result<Option<&str>, FrontError> {
        let mut found = None;
        for (k, v) in &self.0 {
            if k == name {
                if found.is_some() {
                    return Err(FrontError::DuplicateParameter(name.to_string()));
                }
                if v.len() > MAX_PARAM_LEN || v.chars().any(char::is_control) {
                    return Err(FrontError::BadParameter(name.to_string()));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found.filter(|v| !v.is_empty()))
    }

    /// At most [`MAX_PARAMS`] parameters, each at most once (OAuth 2.0 §3.1), checked in
    /// linear time: this runs before the client is authenticated.
    pub fn check_no_duplicates(&self) -> Result<(), FrontError> {
        if self.0.len() > MAX_PARAMS {
            return Err(FrontError::TooManyParameters);
        }
        let mut seen = std::collections::HashSet::with_capacity(self.0.len());
        for (k, _) in &self.0 {
            if !seen.insert(k.as_str()) {
                return Err(FrontError::DuplicateParameter(k.clone()));
            }
        }
        Ok(())
    }

    /// Each whitelisted parameter holds only its allowed characters, within its length.
    pub fn check_charsets(&self) -> Result<(), FrontError> {
        for (k, v) in &self.0 {
            if let Some((allowed, max)) = whitelist(k)
                && (v.chars().count() > max || !v.chars().all(allowed))
            {
                return Err(FrontError::BadParameter(k.clone()));
            }
        }
        Ok(())
    }
}

/// Allowed characters and the longest length.
type Rule = (fn(char) -> bool, usize);

/// Characters and length each parameter may have (whitelists, per RFC 6749 appendix A
/// and RFC 7636); parameters not listed only get the general length and control checks.
fn whitelist(name: &str) -> Option<Rule> {
    fn vschar(c: char) -> bool {
        (' '..='~').contains(&c)
    }
    fn id(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
    }
    fn unreserved(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
    }
    fn token_list(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | ':' | '.')
    }
    fn printable(c: char) -> bool {
        !c.is_control()
    }
    Some(match name {
        "client_id" | "idp_hint" => (id, 128),
        "state" | "nonce" => (vschar, 512),
        "code_challenge" => (unreserved, 128),
        "code_challenge_method" | "response_type" | "response_mode" => (id, 32),
        "scope" | "acr_values" | "prompt" | "ui_locales" => (token_list, 1024),
        "max_age" => (|c: char| c.is_ascii_digit(), 10),
        "login_hint" => (printable, 256),
        _ => return None,
    })
}

/// An authorization request that passed every check.
#[derive(Clone, Debug)]
pub struct AuthorizeRequest {
    pub client_id: ClientId,
    pub redirect_uri: RedirectUri,
    pub state: String,
    pub nonce: String,
    pub scopes: Scope,
    /// The lowest acceptable acr.
    pub acr_min: Acr,
    pub login_hint: Option<String>,
    pub idp_hint: Option<String>,
    pub code_challenge: Option<String>,
    pub max_age: Option<i64>,
    pub prompt: Prompt,
}

/// What is known before the redirect URI is trusted: errors here are shown as pages. The
/// redirect URI is parsed once the client is known (an unknown client is said first).
pub fn client_and_redirect(params: &Params) -> Result<(ClientId, &str), FrontError> {
    let client_id = params
        .single("client_id")
        .map_err(page_dup)?
        .ok_or(FrontError::MissingClientId)?;
    let redirect_uri = params
        .single("redirect_uri")
        .map_err(page_dup)?
        .ok_or(FrontError::MissingRedirectUri)?;
    Ok((ClientId::parse(client_id)?, redirect_uri))
}

// A repeated client_id or redirect_uri cannot be redirected to safely.
fn page_dup(e: FrontError) -> FrontError {
    match e {
        FrontError::DuplicateParameter(p) if p == "redirect_uri" => FrontError::RedirectUriMismatch,
        FrontError::DuplicateParameter(p) if p == "client_id" => FrontError::UnknownClient,
        other => other,
    }
}

/// The state to echo in an error redirect, when there is a usable one.
pub fn echo_state(params: &Params) -> Option<String> {
    params.single("state").ok().flatten().map(str::to_string)
}

/// Validates the rest of the request against the SP's registration.
pub fn validate(
    params: &Params,
    sp: &ServiceProvider,
    redirect_uri: RedirectUri,
    ladder: &AcrLadder,
) -> Result<AuthorizeRequest, FrontError> {
    params.check_no_duplicates()?;
    params.check_charsets()?;
    if params.single("request")?.is_some() {
        return Err(FrontError::RequestNotSupported);
    }
    if params.single("request_uri")?.is_some() {
        return Err(FrontError::RequestUriNotSupported);
    }
    match params.single("response_type")? {
        Some("code") => {}
        _ => return Err(FrontError::UnsupportedResponseType),
    }
    match params.single("response_mode")? {
        None | Some("query") => {}
        Some(_) => return Err(FrontError::UnsupportedResponseMode),
    }
    let scopes = Scope::parse(params.single("scope")?.unwrap_or(""), &sp.scopes)?;
    if !scopes.has_openid() {
        return Err(FrontError::OpenidScopeMissing);
    }
    // Records registered before the setting carry 0: the terms' minimum.
    let min_random = match usize::try_from(sp.min_random_length).unwrap_or(MIN_RANDOM_LEN) {
        0 => MIN_RANDOM_LEN,
        n => n,
    };
    let state = params.single("state")?.ok_or(FrontError::StateMissing)?;
    if state.len() < min_random {
        return Err(FrontError::StateTooShort);
    }
    let nonce = params.single("nonce")?.ok_or(FrontError::NonceMissing)?;
    if nonce.len() < min_random {
        return Err(FrontError::NonceTooShort);
    }
    let mut prompt = Prompt::default();
    let raw_prompt = params.single("prompt")?.unwrap_or("");
    for value in raw_prompt.split(' ') {
        match value {
            "" | "consent" | "select_account" => {}
            "login" => prompt.login = true,
            "none" => prompt.none = true,
            other => return Err(FrontError::UnsupportedPrompt(other.to_string())),
        }
    }
    // OIDC Core §3.1.2.1: `none` stands alone.
    if prompt.none && raw_prompt.split(' ').filter(|v| !v.is_empty()).count() > 1 {
        return Err(FrontError::UnsupportedPrompt(raw_prompt.to_string()));
    }
    let max_age = match params.single("max_age")? {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or(FrontError::InvalidMaxAge)?,
        ),
    };
    let code_challenge = match (
        params.single("code_challenge")?,
        params.single("code_challenge_method")?,
    ) {
        // OAuth 2.1: only an exempt (confidential) client may come without PKCE.
        (None, _) if !sp.pkce_exempt => return Err(FrontError::PkceRequired),
        (None, None) => None,
        (Some(c), Some("S256")) if (43..=128).contains(&c.len()) => Some(c.to_string()),
        (Some(_), Some("S256")) => return Err(FrontError::BadParameter("code_challenge".into())),
        _ => return Err(FrontError::PkceMethodUnsupported),
    };
    let acr_min = acr(params, sp, ladder)?;
    Ok(AuthorizeRequest {
        client_id: ClientId::parse(&sp.client_id)?,
        redirect_uri,
        state: state.to_string(),
        nonce: nonce.to_string(),
        scopes,
        acr_min,
        login_hint: params.single("login_hint")?.map(str::to_string),
        idp_hint: params.single("idp_hint")?.map(str::to_string),
        code_challenge,
        max_age,
        prompt,
    })
}

/// The acr asked: an essential `acr` in the `claims` parameter wins over `acr_values`.
fn acr(params: &Params, sp: &ServiceProvider, ladder: &AcrLadder) -> Result<Acr, FrontError> {
    let mut asked: Vec<String> = Vec::new();
    if let Some(raw) = params.single("claims")? {
        let doc: Value = serde_json::from_str(raw).map_err(|_| FrontError::ClaimsMalformed)?;
        if !doc.is_object() {
            return Err(FrontError::ClaimsMalformed);
        }
        if let Some(acr) = doc.get("id_token").and_then(|t| t.get("acr")) {
            if let Some(v) = acr.get("value") {
                asked.push(v.as_str().ok_or(FrontError::ClaimsMalformed)?.to_string());
            }
            if let Some(vs) = acr.get("values") {
                for v in vs.as_array().ok_or(FrontError::ClaimsMalformed)? {
                    asked.push(v.as_str().ok_or(FrontError::ClaimsMalformed)?.to_string());
                }
            }
        }
    }
    if asked.is_empty()
        && let Some(raw) = params.single("acr_values")?
    {
        asked = raw
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }
    // Nothing asked: the lowest level the SP may use, else the ladder's lowest.
    let min = match ladder.minimum_of(&asked)? {
        Some(m) => m,
        None => match ladder
            .lowest_among(&sp.acr_values)
            .or_else(|| ladder.lowest())
        {
            Some(m) => m,
            None => return Err(FrontError::AcrNotAllowed(String::new())),
        },
    };
    if !min.is_among(&sp.acr_values) {
        return Err(FrontError::AcrNotAllowed(min.to_string()));
    }
    Ok(min)
}

/// The page language: `ui_locales` first, then Accept-Language, French by default.
pub fn locale(params: &Params, accept_language: &str) -> Locale {
    let ui = params.single("ui_locales").ok().flatten().unwrap_or("");
    Locale::negotiate(ui, accept_language)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp() -> ServiceProvider {
        ServiceProvider {
            client_id: "sp".into(),
            scopes: vec!["openid".into(), "email".into(), "given_name".into()],
            acr_values: vec!["eidas1".into(), "eidas2".into()],
            redirect_uris: vec!["https://sp/cb".into()],
            ..Default::default()
        }
    }

    fn ladder() -> AcrLadder {
        AcrLadder::new(vec!["eidas1".into(), "eidas2".into(), "eidas3".into()])
    }

    fn params(extra: &[(&str, &str)]) -> Params {
        let mut p: Vec<(String, String)> = vec![
            ("client_id".into(), "sp".into()),
            ("redirect_uri".into(), "https://sp/cb".into()),
            ("response_type".into(), "code".into()),
            ("scope".into(), "openid email".into()),
            ("state".into(), "s".repeat(43)),
            ("nonce".into(), "n".repeat(43)),
            ("code_challenge".into(), "c".repeat(43)),
            ("code_challenge_method".into(), "S256".into()),
        ];
        for (k, v) in extra {
            p.retain(|(pk, _)| pk != k);
            if !v.is_empty() {
                p.push((k.to_string(), v.to_string()));
            }
        }
        Params::new(p)
    }

    fn uri(s: &str) -> RedirectUri {
        RedirectUri::parse(s).unwrap()
    }

    fn check(extra: &[(&str, &str)]) -> Result<AuthorizeRequest, FrontError> {
        validate(&params(extra), &sp(), uri("https://sp/cb"), &ladder())
    }

    #[test]
    fn a_good_request_passes() {
        let r = check(&[]).unwrap();
        assert_eq!(r.scopes.as_slice(), ["openid", "email"]);
        assert_eq!(r.acr_min.as_str(), "eidas1");
        assert_eq!(r.client_id.as_str(), "sp");
        assert_eq!(r.redirect_uri.as_str(), "https://sp/cb");
    }

    #[test]
    fn each_bad_parameter_has_its_error() {
        let c43 = "c".repeat(43);
        let plain = [
            ("code_challenge", c43.as_str()),
            ("code_challenge_method", "plain"),
        ];
        let no_method = [
            ("code_challenge", c43.as_str()),
            ("code_challenge_method", ""),
        ];
        let cases: Vec<(&[(&str, &str)], &str)> = vec![
            (&[("response_type", "token")], "unsupported_response_type"),
            (
                &[("response_mode", "fragment")],
                "unsupported_response_mode",
            ),
            (&[("scope", "email")], "openid_scope_missing"),
            (&[("scope", "openid birthdate")], "scope_not_allowed"),
            (&[("scope", "openid wat")], "unknown_scope"),
            (&[("state", "")], "state_missing"),
            (&[("state", "short")], "state_too_short"),
            (&[("nonce", "")], "nonce_missing"),
            (&[("nonce", "short")], "nonce_too_short"),
            (&[("acr_values", "eidas3")], "acr_not_allowed"),
            (&[("acr_values", "loa4")], "acr_unknown"),
            (&[("claims", "{not json")], "claims_malformed"),
            (&[("prompt", "none login")], "prompt_unsupported"),
            (&[("prompt", "bogus")], "prompt_unsupported"),
            (&plain, "pkce_method_unsupported"),
            (&no_method, "pkce_method_unsupported"),
            (&[("request", "eyJ")], "request_not_supported"),
            (&[("max_age", "-1")], "invalid_parameter"),
            (&[("max_age", "99999999999")], "invalid_parameter"),
            (
                &[(
                    "state",
                    "é-not-ascii-but-long-enough-to-carry-256-bits-of-entropy",
                )],
                "invalid_parameter",
            ),
            (&[("idp_hint", "../../etc")], "invalid_parameter"),
            (
                &[
                    (
                        "code_challenge",
                        "abc def-ghi-jkl-mno-pqr-stu-vwx-yz0-123-456",
                    ),
                    ("code_challenge_method", "S256"),
                ],
                "invalid_parameter",
            ),
            (&[("login_hint", "a\u{0007}b")], "invalid_parameter"),
        ];
        for (extra, code) in cases {
            let err = check(extra).unwrap_err();
            assert_eq!(err.code(), code, "{extra:?}");
        }
    }

    #[test]
    fn pkce_is_required_unless_the_sp_is_exempt() {
        let without = [("code_challenge", ""), ("code_challenge_method", "")];
        assert_eq!(check(&without).unwrap_err().code(), "pkce_required");
        // A method alone is no challenge.
        assert_eq!(
            check(&[("code_challenge", "")]).unwrap_err().code(),
            "pkce_required"
        );
        assert_eq!(check(&[]).unwrap().code_challenge, Some("c".repeat(43)));

        let exempt = ServiceProvider {
            pkce_exempt: true,
            ..sp()
        };
        let with = |extra: &[(&str, &str)]| {
            validate(&params(extra), &exempt, uri("https://sp/cb"), &ladder())
        };
        assert_eq!(with(&without).unwrap().code_challenge, None);
        // Exempt from sending PKCE, not from its rules once sent.
        let err = with(&[("code_challenge_method", "plain")]).unwrap_err();
        assert_eq!(err.code(), "pkce_method_unsupported");
        assert!(with(&[]).unwrap().code_challenge.is_some());
    }

    #[test]
    fn duplicates_are_refused() {
        let mut p = params(&[]).0;
        p.push(("scope".into(), "openid".into()));
        let err = validate(&Params::new(p), &sp(), uri("https://sp/cb"), &ladder()).unwrap_err();
        assert_eq!(err.code(), "duplicate_parameter");
        let mut p = params(&[]).0;
        p.push(("redirect_uri".into(), "https://evil/cb".into()));
        assert_eq!(
            client_and_redirect(&Params::new(p)).unwrap_err().code(),
            "redirect_uri_mismatch"
        );
    }

    #[test]
    fn the_client_is_parsed_before_its_redirect_uri_is_trusted() {
        let with = |pairs: &[(&str, &str)]| {
            Params::new(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let good = with(&[("client_id", "sp"), ("redirect_uri", "https://sp/cb")]);
        let (id, raw) = client_and_redirect(&good).unwrap();
        assert_eq!((id.as_str(), raw), ("sp", "https://sp/cb"));
        // No SP has such an id: unknown, whatever the redirect URI.
        let bad_id = with(&[("client_id", "../sp"), ("redirect_uri", "not a URL")]);
        assert_eq!(
            client_and_redirect(&bad_id).unwrap_err().code(),
            "unknown_client"
        );
        // A missing parameter is still said before the id is judged.
        let missing = with(&[("client_id", "../sp")]);
        assert_eq!(
            client_and_redirect(&missing).unwrap_err().code(),
            "missing_redirect_uri"
        );
    }

    #[test]
    fn essential_acr_in_claims_wins() {
        let r = check(&[
            ("acr_values", "eidas1"),
            (
                "claims",
                r#"{"id_token":{"acr":{"essential":true,"value":"eidas2"}}}"#,
            ),
        ])
        .unwrap();
        assert_eq!(r.acr_min.as_str(), "eidas2");
    }

    #[test]
    fn locale_follows_ui_locales_then_accept_language() {
        assert_eq!(
            locale(&params(&[("ui_locales", "en-GB")]), "fr"),
            Locale::En
        );
        assert_eq!(locale(&params(&[]), "en-US,en;q=0.8"), Locale::En);
        assert_eq!(locale(&params(&[]), "de"), Locale::Fr);
    }

    /// The check runs before the client is authenticated: thousands of distinct names
    /// are refused by their count, at once, and a repeat is found in one pass.
    #[test]
    fn too_many_parameters_are_refused_at_once_and_repeats_found_in_one_pass() {
        let named =
            |n: usize| Params::new((0..n).map(|i| (format!("p{i}"), String::new())).collect());
        let started = std::time::Instant::now();
        let err = named(16_000).check_no_duplicates().unwrap_err();
        assert_eq!(err.code(), "too_many_parameters");
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
        assert_eq!(
            named(MAX_PARAMS + 1)
                .check_no_duplicates()
                .unwrap_err()
                .code(),
            "too_many_parameters"
        );
        named(MAX_PARAMS).check_no_duplicates().unwrap();
        let mut pairs: Vec<_> = (0..MAX_PARAMS - 1)
            .map(|i| (format!("p{i}"), String::new()))
            .collect();
        pairs.push(("p17".into(), "again".into()));
        let err = Params::new(pairs).check_no_duplicates().unwrap_err();
        assert_eq!(err.code(), "duplicate_parameter");
        assert!(err.to_string().contains("p17"), "{err}");
    }
}
