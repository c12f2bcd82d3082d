//! The claims of the JWTs the hub issues to an SP (ID tokens, logout tokens) and the one
//! reading of `aud` every token the hub is handed goes through.

use serde_json::{Map, Value};

/// The audiences a JWT names: `aud` as one string or an array of strings; anything
/// else names none.
pub fn audiences(claims: &Map<String, Value>) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether the JWT is meant for `audience`.
pub fn is_for(claims: &Map<String, Value>, audience: &str) -> bool {
    audiences(claims).contains(&audience)
}

/// The client an ID token of the hub was issued to: its only audience (the hub never
/// issues one to several).
pub fn client_of(claims: &Map<String, Value>) -> Option<&str> {
    match audiences(claims).as_slice() {
        [one] => Some(one),
        _ => None,
    }
}

/// What an ID token says (OIDC Core §2), in the order the hub writes it.
pub struct IdToken<'a> {
    pub issuer: &'a str,
    pub sub: &'a str,
    pub client_id: &'a str,
    pub issued_at: i64,
    pub expires_at: i64,
    pub auth_time: i64,
    pub nonce: &'a str,
    pub acr: &'a str,
    pub amr: &'a [String],
    /// The hub session, for back-channel logout and `id_token_hint`.
    pub sid: &'a str,
    pub at_hash: &'a str,
}

impl IdToken<'_> {
    pub fn claims(&self) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("iss".into(), Value::from(self.issuer));
        c.insert("sub".into(), Value::from(self.sub));
        c.insert("aud".into(), Value::from(self.client_id));
        c.insert("exp".into(), Value::from(self.expires_at));
        c.insert("iat".into(), Value::from(self.issued_at));
        c.insert("auth_time".into(), Value::from(self.auth_time));
        c.insert("nonce".into(), Value::from(self.nonce));
        c.insert("acr".into(), Value::from(self.acr));
        if !self.amr.is_empty() {
            c.insert("amr".into(), Value::from(self.amr.to_vec()));
        }
        c.insert("sid".into(), Value::from(self.sid));
        c.insert("at_hash".into(), Value::from(self.at_hash));
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(aud: Value) -> Map<String, Value> {
        let Value::Object(m) = json!({ "aud": aud }) else {
            unreachable!()
        };
        m
    }

    #[test]
    fn aud_is_a_string_or_an_array_and_nothing_else() {
        assert!(is_for(&claims(json!("sp")), "sp"));
        assert!(is_for(&claims(json!(["other", "sp"])), "sp"));
        assert!(!is_for(&claims(json!("spx")), "sp"));
        assert!(!is_for(&claims(json!({ "sp": true })), "sp"));
        assert!(!is_for(&claims(json!(null)), "sp"));
        assert!(!is_for(&Map::new(), "sp"));
    }

    #[test]
    fn a_hint_names_its_client_only_when_it_has_one_audience() {
        assert_eq!(client_of(&claims(json!("sp"))), Some("sp"));
        assert_eq!(client_of(&claims(json!(["sp"]))), Some("sp"));
        // Two audiences: which SP asks is ambiguous, so none is assumed.
        assert_eq!(client_of(&claims(json!(["sp", "other"]))), None);
        assert_eq!(client_of(&Map::new()), None);
    }

    #[test]
    fn an_id_token_carries_amr_only_when_known() {
        let t = IdToken {
            issuer: "https://hub",
            sub: "s",
            client_id: "sp",
            issued_at: 10,
            expires_at: 20,
            auth_time: 5,
            nonce: "n",
            acr: "eidas1",
            amr: &[],
            sid: "sid",
            at_hash: "h",
        };
        let c = t.claims();
        assert_eq!(c["aud"], "sp");
        assert_eq!(c["nonce"], "n");
        assert!(!c.contains_key("amr"));
        let amr = vec!["pwd".to_string()];
        let c = IdToken { amr: &amr, ..t }.claims();
        assert_eq!(c["amr"], json!(["pwd"]));
    }
}
