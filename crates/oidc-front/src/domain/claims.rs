//! Scopes and the claims each one releases (the AgentConnect and FranceConnect sets).

use crate::domain::accounts::{PIVOT_CLAIMS, PIVOT_SCOPE};

/// Every scope the hub knows, with the claims it releases.
pub const SCOPES: &[(&str, &[&str])] = &[
    ("openid", &["sub"]),
    // AgentConnect / ProConnect
    ("given_name", &["given_name"]),
    ("usual_name", &["usual_name"]),
    ("email", &["email"]),
    ("uid", &["uid"]),
    ("siren", &["siren"]),
    ("siret", &["siret"]),
    ("organizational_unit", &["organizational_unit"]),
    ("belonging_population", &["belonging_population"]),
    ("phone", &["phone_number"]),
    ("chorusdt", &["chorusdt:matricule", "chorusdt:societe"]),
    ("idp_id", &["idp_id"]),
    ("idp_acr", &["idp_acr"]),
    // FranceConnect
    (
        "profile",
        &[
            "given_name",
            "family_name",
            "birthdate",
            "gender",
            "birthplace",
            "birthcountry",
            "preferred_username",
        ],
    ),
    (PIVOT_SCOPE, &PIVOT_CLAIMS),
    ("birth", &["birthdate", "birthplace", "birthcountry"]),
    ("family_name", &["family_name"]),
    ("birthdate", &["birthdate"]),
    ("gender", &["gender"]),
    ("birthplace", &["birthplace"]),
    ("birthcountry", &["birthcountry"]),
    ("preferred_username", &["preferred_username"]),
];

/// Claims the hub itself produces rather than copies from the IdP.
pub const HUB_CLAIMS: &[&str] = &["sub", "idp_id", "idp_acr"];

/// Claims an IdP must provide when the SP is to receive them: without them the identity
/// is not usable (the others, such as phone or SIRET, are optional at the IdPs).
pub const REQUIRED_FROM_IDP: &[&str] = &[
    "given_name",
    "usual_name",
    "family_name",
    "email",
    "uid",
    "birthdate",
    "gender",
    "birthcountry",
];

/// Of the claims an SP will receive, those the IdP must provide.
pub fn required_from_idp(released: &[String]) -> Vec<String> {
    released
        .iter()
        .filter(|c| REQUIRED_FROM_IDP.contains(&c.as_str()))
        .cloned()
        .collect()
}

pub fn is_known_scope(scope: &str) -> bool {
    SCOPES.iter().any(|(s, _)| *s == scope)
}

pub fn scopes_supported() -> Vec<&'static str> {
    SCOPES.iter().map(|(s, _)| *s).collect()
}

pub fn claims_supported() -> Vec<&'static str> {
    let mut all: Vec<&str> = SCOPES.iter().flat_map(|(_, c)| c.iter().copied()).collect();
    all.extend([
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "acr",
        "amr",
        "sid",
    ]);
    all.sort_unstable();
    all.dedup();
    all
}

/// The claims released for `scopes`, limited to the SP's habilitation `allowed`
/// (`sub` is always released with `openid`).
pub fn released_claims(scopes: &[String], allowed: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for scope in scopes {
        if let Some((_, claims)) = SCOPES.iter().find(|(s, _)| s == scope) {
            for c in *claims {
                let permitted = *c == "sub" || allowed.iter().any(|a| a == c);
                if permitted && !out.iter().any(|o| o == c) {
                    out.push((*c).to_string());
                }
            }
        }
    }
    out
}

/// The claims an SP receives: those `released` to it, from what the IdP said (`idp_claims`),
/// and the hub's own `idp_id` and `idp_acr`.
pub fn granted(
    released: &[String],
    idp_id: &str,
    acr: &str,
    idp_claims: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value;
    let mut out = serde_json::Map::new();
    for name in released {
        match name.as_str() {
            "sub" => {}
            "idp_id" => {
                out.insert(name.clone(), Value::from(idp_id));
            }
            "idp_acr" => {
                out.insert(name.clone(), Value::from(acr));
            }
            _ => {
                if let Some(v) = idp_claims.get(name) {
                    out.insert(name.clone(), v.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn release_is_scope_and_habilitation() {
        let got = released_claims(
            &v(&["openid", "profile", "email", "chorusdt"]),
            &v(&["given_name", "email", "chorusdt:matricule"]),
        );
        assert_eq!(
            got,
            v(&["sub", "given_name", "email", "chorusdt:matricule"])
        );
        assert_eq!(
            released_claims(&v(&["openid"]), &v(&["email"])),
            v(&["sub"])
        );
    }
}
