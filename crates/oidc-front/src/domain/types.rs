//! Values of a request, parsed once where it is decoded: past that point no rule sees an
//! unchecked string. Each refusal is the error the request got before these types.

use std::fmt;

use relais_jose::Alg;
use relais_proto::registry::v1::ServiceProvider;

use crate::domain::claims;
use crate::error::FrontError;

/// A client's identifier, of the characters and length the registry enrols (1-128 of
/// A-Z a-z 0-9 - _ .).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    /// Anything else names no client: refused as an unknown one.
    pub fn parse(raw: &str) -> Result<ClientId, FrontError> {
        if relais_bus::events::is_partner_id(raw) {
            Ok(ClientId(raw.to_string()))
        } else {
            Err(FrontError::UnknownClient)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An absolute URL, kept exactly as sent: it is compared byte for byte with the URIs the
/// SP registered, never normalised (a normalised match would let `https://sp/cb/../x`
/// through).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Not a URL: no SP can have registered it.
    pub fn parse(raw: &str) -> Result<RedirectUri, FrontError> {
        url::Url::parse(raw).map_err(|_| FrontError::RedirectUriMismatch)?;
        Ok(RedirectUri(raw.to_string()))
    }

    /// Whether this is, byte for byte, one of `registered`.
    pub fn is_among(&self, registered: &[String]) -> bool {
        registered.iter().any(|r| r == &self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The scopes asked, each known and allowed to the SP, once each, in the order asked
/// (the token response lists them so).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope(Vec<String>);

impl Scope {
    /// The space-separated `scope` parameter; each value is checked in turn, so the first
    /// bad one names the error.
    pub fn parse(raw: &str, allowed: &[String]) -> Result<Scope, FrontError> {
        let mut out: Vec<String> = Vec::new();
        for s in raw.split(' ').filter(|s| !s.is_empty()) {
            if !claims::is_known_scope(s) {
                return Err(FrontError::UnknownScope(s.to_string()));
            }
            if !allowed.iter().any(|a| a == s) {
                return Err(FrontError::ScopeNotAllowed(s.to_string()));
            }
            if !out.iter().any(|o| o == s) {
                out.push(s.to_string());
            }
        }
        Ok(Scope(out))
    }

    /// An OpenID Connect request: without `openid` it is plain OAuth, which the hub does not serve.
    pub fn has_openid(&self) -> bool {
        self.0.iter().any(|s| s == "openid")
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

/// The language of the pages shown to the person.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Locale {
    #[default]
    Fr,
    En,
}

impl Locale {
    /// `ui_locales` first, then Accept-Language, French by default.
    pub fn negotiate(ui_locales: &str, accept_language: &str) -> Locale {
        Locale::parse(relais_config::page_language(ui_locales, accept_language))
    }

    /// A language this hub writes its pages in; anything else is French.
    pub fn parse(raw: &str) -> Locale {
        match raw {
            "en" => Locale::En,
            _ => Locale::Fr,
        }
    }

    /// As the gateway receives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::Fr => "fr",
            Locale::En => "en",
        }
    }
}

/// The algorithm the SP's ID tokens are signed with; a record without one the hub signs
/// with gets ES256, the registry's default.
pub fn id_token_alg(sp: &ServiceProvider) -> Alg {
    Alg::parse(&sp.id_token_signed_response_alg).unwrap_or(Alg::Es256)
}

/// The algorithm the SP's userinfo is signed with; none: it is not signed.
pub fn userinfo_alg(sp: &ServiceProvider) -> Option<Alg> {
    match sp.userinfo_signed_response_alg.as_str() {
        "" => None,
        other => Some(Alg::parse(other).unwrap_or(Alg::Es256)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_id_is_what_the_registry_enrols() {
        assert_eq!(ClientId::parse("sp-1_a.b").unwrap().as_str(), "sp-1_a.b");
        for bad in ["", "../etc", "sp 1", "é", &"a".repeat(129)] {
            let err = ClientId::parse(bad).unwrap_err();
            assert_eq!(err.code(), "unknown_client", "{bad:?}");
        }
    }

    #[test]
    fn a_redirect_uri_is_absolute_and_matched_byte_for_byte() {
        let registered = vec!["https://sp.example/cb".to_string()];
        assert!(
            RedirectUri::parse("https://sp.example/cb")
                .unwrap()
                .is_among(&registered)
        );
        // Equal once normalised, yet not what was registered.
        for other in [
            "https://SP.example/cb",
            "https://sp.example:443/cb",
            "https://sp.example/x/../cb",
            "https://sp.example/cb/",
        ] {
            let uri = RedirectUri::parse(other).unwrap();
            assert!(!uri.is_among(&registered), "{other}");
            assert_eq!(uri.as_str(), other);
        }
        for bad in ["/cb", "sp.example/cb", ""] {
            let err = RedirectUri::parse(bad).unwrap_err();
            assert_eq!(err.code(), "redirect_uri_mismatch", "{bad:?}");
        }
    }

    #[test]
    fn a_scope_is_a_set_of_known_allowed_values_in_the_order_asked() {
        let allowed: Vec<String> = vec!["openid".into(), "email".into()];
        let s = Scope::parse(" email openid email ", &allowed).unwrap();
        assert_eq!(s.as_slice(), ["email", "openid"]);
        assert!(s.has_openid());
        assert!(!Scope::parse("email", &allowed).unwrap().has_openid());
        assert!(!Scope::parse("", &allowed).unwrap().has_openid());
        let code = |raw: &str| Scope::parse(raw, &allowed).unwrap_err().code();
        assert_eq!(code("openid wat"), "unknown_scope");
        assert_eq!(code("openid birthdate"), "scope_not_allowed");
        // The first bad value decides.
        assert_eq!(code("birthdate wat"), "scope_not_allowed");
        assert_eq!(code("wat birthdate"), "unknown_scope");
    }

    #[test]
    fn the_page_language_is_french_unless_english_is_preferred() {
        assert_eq!(Locale::negotiate("en-GB", "fr"), Locale::En);
        assert_eq!(Locale::negotiate("", "en-US,en;q=0.8"), Locale::En);
        assert_eq!(Locale::negotiate("", "de"), Locale::Fr);
        assert_eq!(Locale::parse("en").as_str(), "en");
        assert_eq!(Locale::parse("de"), Locale::Fr);
        assert_eq!(Locale::parse(""), Locale::Fr);
    }

    #[test]
    fn an_sp_signs_with_its_registered_algorithm() {
        let sp = |id: &str, ui: &str| ServiceProvider {
            id_token_signed_response_alg: id.into(),
            userinfo_signed_response_alg: ui.into(),
            ..Default::default()
        };
        assert_eq!(id_token_alg(&sp("RS256", "")), Alg::Rs256);
        assert_eq!(id_token_alg(&sp("ES256", "")), Alg::Es256);
        assert_eq!(id_token_alg(&sp("", "")), Alg::Es256);
        assert_eq!(userinfo_alg(&sp("ES256", "")), None);
        assert_eq!(userinfo_alg(&sp("ES256", "RS256")), Some(Alg::Rs256));
        assert_eq!(userinfo_alg(&sp("RS256", "ES256")), Some(Alg::Es256));
    }
}
