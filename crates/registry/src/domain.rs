//! Partner records and the rules a record must meet before it is stored.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use relais_bus::events::{PartnerKind, PartnerStatus};
use relais_jose::Alg;

use crate::RegistryError;

pub const AUTH_METHODS: [&str; 2] = ["client_secret_basic", "client_secret_post"];
/// What an SP may authenticate with (IdPs are asked with a secret only).
pub const SP_AUTH_METHODS: [&str; 3] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];
/// A public client's method: it has no secret, so PKCE alone binds its code to it.
pub const PUBLIC_CLIENT_AUTH_METHOD: &str = "none";
pub const ENCRYPTION_ALGS: [&str; 2] = ["RSA-OAEP-256", "ECDH-ES"];
pub const ENCRYPTION_ENCS: [&str; 1] = ["A256GCM"];

/// A service provider as enrolled (the secret in clear only on its way in).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceProviderSeed {
    pub client_id: String,
    pub name: String,
    #[serde(default)]
    pub sector_identifier: Option<String>,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub claims: Vec<String>,
    pub acr_values: Vec<String>,
    pub idp_ids: Vec<String>,
    #[serde(default = "default_alg")]
    pub id_token_signed_response_alg: Alg,
    #[serde(default = "default_auth_method")]
    pub token_endpoint_auth_method: String,
    #[serde(default = "default_status", with = "relais_bus::events::status_text")]
    pub status: PartnerStatus,
    /// Public keys (a JWKS JSON document) for private_key_jwt and encryption.
    #[serde(default)]
    pub jwks: String,
    /// None: userinfo is plain JSON (stored, and accepted in the seed, as "").
    #[serde(default, with = "alg_or_empty")]
    pub userinfo_signed_response_alg: Option<Alg>,
    #[serde(default)]
    pub id_token_encrypted_response_alg: String,
    #[serde(default)]
    pub id_token_encrypted_response_enc: String,
    #[serde(default)]
    pub userinfo_encrypted_response_alg: String,
    #[serde(default)]
    pub userinfo_encrypted_response_enc: String,
    /// Single sign-on: a live hub session may sign the user in here without the IdP,
    /// when the deployment allows it too.
    #[serde(default)]
    pub sso: bool,
    /// The acr levels asked that a session may serve here by single sign-on (as
    /// FranceConnect's allowedSsoAcrs; a subset of `acr_values`; empty: every one the SP
    /// may ask). The session's own level must reach the one asked.
    #[serde(default)]
    pub sso_acr_values: Vec<String>,
    /// Fewest characters of `state` and `nonce` (43 = 256 bits in base64url, as the
    /// terms require; lower only to admit a widely used RP, e.g. 27 for 160 bits).
    #[serde(default = "default_min_random_length")]
    pub min_random_length: u32,
    /// Where the hub POSTs a logout token when a session this SP signed in under ends
    /// (OpenID Connect Back-Channel Logout 1.0); none: the SP is not told.
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    /// Authorization requests may come without PKCE, which every other SP must send
    /// (OAuth 2.1, RFC 9700 §2.1.1): for a legacy confidential client only.
    #[serde(default)]
    pub pkce_exempt: bool,
}

/// The terms' 256 bits, in base64url characters.
pub const DEFAULT_MIN_RANDOM_LENGTH: u32 = 43;

fn default_min_random_length() -> u32 {
    DEFAULT_MIN_RANDOM_LENGTH
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProviderSeed {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub acr_values: Vec<String>,
    pub scopes: Vec<String>,
    #[serde(default = "default_auth_method")]
    pub token_endpoint_auth_method: String,
    #[serde(default = "default_status", with = "relais_bus::events::status_text")]
    pub status: PartnerStatus,
}

/// The seed file: partners created or updated at start.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub identity_providers: Vec<IdentityProviderSeed>,
    #[serde(default)]
    pub service_providers: Vec<ServiceProviderSeed>,
    #[serde(default)]
    pub people: Vec<PersonSeed>,
}

/// Roles a person may hold; `contact` acts for one partner, `investigator` looks up
/// connections in the proof store (its REST investigation API), the others are support
/// staff.
pub const PERSON_ROLES: [&str; 8] = [
    "contact",
    "level1",
    "level2",
    "level3",
    "production_manager",
    "product_owner",
    "partner_relations",
    "investigator",
];

/// A partner's authorised contact or a support staff member.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonSeed {
    pub email: String,
    pub name: String,
    pub role: String,
    /// For a contact: `sp:<client_id>` or `idp:<id>`.
    #[serde(default)]
    pub partner: Option<String>,
    /// The IdP that signs this person in: support admits them only through it.
    #[serde(default)]
    pub idp: Option<String>,
    /// Their subject at that IdP, when known at enrolment; otherwise their first use
    /// records it.
    #[serde(default)]
    pub idp_sub: Option<String>,
}

impl PersonSeed {
    /// The partner as (kind, id), checked against the seed's partners.
    pub fn validate(&self, seed: &Seed) -> Result<Option<(PartnerKind, String)>, RegistryError> {
        let invalid =
            |what: &str| RegistryError::Invalid(format!("person {:?}: {what}", self.email));
        if !relais_config::is_email_address(&self.email) {
            return Err(invalid("not an e-mail address"));
        }
        if self.name.trim().is_empty() {
            return Err(invalid("a name is required"));
        }
        if !PERSON_ROLES.contains(&self.role.as_str()) {
            return Err(invalid(&format!(
                "unknown role {:?} (one of {})",
                self.role,
                PERSON_ROLES.join(", ")
            )));
        }
        match (&self.idp, &self.idp_sub) {
            (None, Some(_)) => return Err(invalid("idp_sub needs the idp that gave it")),
            (Some(idp), _) if !seed.identity_providers.iter().any(|i| &i.id == idp) => {
                return Err(invalid(&format!("unknown identity provider {idp}")));
            }
            (_, Some(sub)) if sub.trim().is_empty() || sub.len() > 255 => {
                return Err(invalid("idp_sub must be 1 to 255 characters"));
            }
            _ => {}
        }
        match (self.role.as_str(), &self.partner) {
            ("contact", None) => Err(invalid("a contact needs its partner (sp:<id> or idp:<id>)")),
            ("contact", Some(partner)) => {
                let known = match partner
                    .split_once(':')
                    .and_then(|(kind, id)| Some((PartnerKind::parse(kind)?, id)))
                {
                    Some((PartnerKind::Sp, id)) => seed
                        .service_providers
                        .iter()
                        .any(|sp| sp.client_id == id)
                        .then_some((PartnerKind::Sp, id)),
                    Some((PartnerKind::Idp, id)) => seed
                        .identity_providers
                        .iter()
                        .any(|idp| idp.id == id)
                        .then_some((PartnerKind::Idp, id)),
                    None => None,
                };
                match known {
                    Some((kind, id)) => Ok(Some((kind, id.to_string()))),
                    None => Err(invalid(&format!("unknown partner {partner:?}"))),
                }
            }
            (_, Some(_)) => Err(invalid("support staff act for no partner")),
            (_, None) => Ok(None),
        }
    }
}

fn default_alg() -> Alg {
    Alg::Es256
}

/// An optional algorithm spelled "" when absent, as the registry stores it.
mod alg_or_empty {
    use relais_jose::Alg;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(alg: &Option<Alg>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(alg.map_or("", Alg::as_str))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Alg>, D::Error> {
        match String::deserialize(d)?.as_str() {
            "" => Ok(None),
            name => Alg::parse(name).map(Some).map_err(serde::de::Error::custom),
        }
    }
}
fn default_auth_method() -> String {
    "client_secret_basic".into()
}
fn default_status() -> PartnerStatus {
    PartnerStatus::Active
}

impl Seed {
    pub fn parse(toml_text: &str) -> Result<Seed, RegistryError> {
        let seed: Seed = toml::from_str(toml_text)
            .map_err(|e| RegistryError::Invalid(format!("seed file: {e}")))?;
        for idp in &seed.identity_providers {
            idp.validate()?;
        }
        for sp in &seed.service_providers {
            sp.validate()?;
            for idp in &sp.idp_ids {
                if !seed.identity_providers.iter().any(|i| &i.id == idp) {
                    return Err(RegistryError::Invalid(format!(
                        "service provider {}: unknown identity provider {idp}",
                        sp.client_id
                    )));
                }
            }
        }
        let mut emails = std::collections::HashSet::new();
        for person in &seed.people {
            person.validate(&seed)?;
            if !emails.insert(person.email.to_lowercase()) {
                return Err(RegistryError::Invalid(format!(
                    "person {:?} is listed twice",
                    person.email
                )));
            }
        }
        Ok(seed)
    }
}

fn check_id(what: &str, id: &str) -> Result<(), RegistryError> {
    if relais_bus::events::is_partner_id(id) {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "{what} {id:?}: 1-128 characters among A-Z a-z 0-9 - _ ."
        )))
    }
}

/// A redirect URI must be absolute, without fragment, and https unless it is loopback.
pub fn check_redirect_uri(uri: &str) -> Result<(), RegistryError> {
    let parsed = url::Url::parse(uri)
        .map_err(|_| RegistryError::Invalid(format!("redirect URI {uri:?} is not a URL")))?;
    if parsed.fragment().is_some() {
        return Err(RegistryError::Invalid(format!(
            "redirect URI {uri:?} must not have a fragment"
        )));
    }
    let loopback = matches!(
        parsed.host_str(),
        Some("127.0.0.1") | Some("localhost") | Some("[::1]")
    );
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(RegistryError::Invalid(format!(
            "redirect URI {uri:?} must be https (http only on loopback)"
        ))),
    }
}

impl ServiceProviderSeed {
    pub fn validate(&self) -> Result<(), RegistryError> {
        check_id("client_id", &self.client_id)?;
        // 256 bits of entropy: at least 43 base64url characters (terms of use).
        if self.client_secret.len() < 43 {
            return Err(RegistryError::Invalid(format!(
                "service provider {}: client_secret must carry 256 bits (43+ characters)",
                self.client_id
            )));
        }
        if self.redirect_uris.is_empty() {
            return Err(RegistryError::Invalid(format!(
                "service provider {}: at least one redirect URI",
                self.client_id
            )));
        }
        for uri in self
            .redirect_uris
            .iter()
            .chain(&self.post_logout_redirect_uris)
        {
            check_redirect_uri(uri)?;
        }
        if let Some(uri) = &self.backchannel_logout_uri {
            // The same rules as a redirect URI: absolute, no fragment (the spec's own),
            // https unless loopback, since the hub POSTs tokens to it.
            check_redirect_uri(uri)?;
        }
        let sp = |what: String| {
            RegistryError::Invalid(format!("service provider {}: {what}", self.client_id))
        };
        // Said before the method itself: a public client must never be exempt, whether
        // or not this hub admits public clients.
        if self.pkce_exempt && self.token_endpoint_auth_method == PUBLIC_CLIENT_AUTH_METHOD {
            return Err(RegistryError::PkceExemptPublicClient(
                self.client_id.clone(),
            ));
        }
        if !SP_AUTH_METHODS.contains(&self.token_endpoint_auth_method.as_str()) {
            return Err(sp(format!(
                "token_endpoint_auth_method must be one of {SP_AUTH_METHODS:?}"
            )));
        }
        let needs_keys = self.token_endpoint_auth_method == "private_key_jwt"
            || !self.id_token_encrypted_response_alg.is_empty()
            || !self.userinfo_encrypted_response_alg.is_empty();
        if needs_keys {
            let doc: Result<serde_json::Value, _> = serde_json::from_str(&self.jwks);
            let has_keys = doc
                .ok()
                .and_then(|d| {
                    d.get("keys")
                        .and_then(|k| k.as_array())
                        .map(|k| !k.is_empty())
                })
                .unwrap_or(false);
            if !has_keys {
                return Err(sp(
                    "jwks must be a JWKS document with at least one key".into()
                ));
            }
        }
        if let Some(a) = self
            .sso_acr_values
            .iter()
            .find(|a| !self.acr_values.contains(a))
        {
            return Err(sp(format!(
                "sso_acr_values: {a} is not one of its acr_values"
            )));
        }
        // Below 128 bits (22 base64url characters) a state can be guessed.
        if !(22..=DEFAULT_MIN_RANDOM_LENGTH).contains(&self.min_random_length) {
            return Err(sp(format!(
                "min_random_length must be between 22 and {DEFAULT_MIN_RANDOM_LENGTH}"
            )));
        }
        for (field, alg, enc) in [
            (
                "id_token",
                &self.id_token_encrypted_response_alg,
                &self.id_token_encrypted_response_enc,
            ),
            (
                "userinfo",
                &self.userinfo_encrypted_response_alg,
                &self.userinfo_encrypted_response_enc,
            ),
        ] {
            let ok = (alg.is_empty() && enc.is_empty())
                || (ENCRYPTION_ALGS.contains(&alg.as_str())
                    && (enc.is_empty() || ENCRYPTION_ENCS.contains(&enc.as_str())));
            if !ok {
                return Err(sp(format!(
                    "{field}_encrypted_response_alg must be one of {ENCRYPTION_ALGS:?} with \
                     {field}_encrypted_response_enc A256GCM"
                )));
            }
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            return Err(RegistryError::Invalid(format!(
                "service provider {}: scopes must include openid",
                self.client_id
            )));
        }
        Ok(())
    }
}

impl IdentityProviderSeed {
    pub fn validate(&self) -> Result<(), RegistryError> {
        check_id("identity provider id", &self.id)?;
        let issuer = url::Url::parse(&self.issuer).map_err(|_| {
            RegistryError::Invalid(format!(
                "identity provider {}: issuer is not a URL",
                self.id
            ))
        })?;
        if !matches!(issuer.scheme(), "https" | "http") {
            return Err(RegistryError::Invalid(format!(
                "identity provider {}: issuer must be http(s)",
                self.id
            )));
        }
        if !AUTH_METHODS.contains(&self.token_endpoint_auth_method.as_str()) {
            return Err(RegistryError::Invalid(format!(
                "identity provider {}: token_endpoint_auth_method must be one of {AUTH_METHODS:?}",
                self.id
            )));
        }
        if self.acr_values.is_empty() {
            return Err(RegistryError::Invalid(format!(
                "identity provider {}: acr_values must not be empty",
                self.id
            )));
        }
        Ok(())
    }
}

/// Client secrets are kept only as an HMAC under the registry's key: a keyed hash, so a
/// stolen table alone reveals nothing, and fast enough for the token endpoint.
#[derive(Clone)]
pub struct SecretHasher {
    key: Vec<u8>,
}

impl SecretHasher {
    pub fn new(key: &str) -> Self {
        SecretHasher {
            key: key.as_bytes().to_vec(),
        }
    }

    pub fn hash(&self, secret: &str) -> Vec<u8> {
        // HMAC accepts keys of any length.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return Vec::new(),
        };
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    pub fn matches(&self, secret: &str, stored: &[u8]) -> bool {
        let computed = self.hash(secret);
        !stored.is_empty() && bool::from(computed.as_slice().ct_eq(stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_https_or_loopback() {
        assert!(check_redirect_uri("https://sp.example/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:8700/cb").is_ok());
        assert!(check_redirect_uri("http://sp.example/cb").is_err());
        assert!(check_redirect_uri("https://sp.example/cb#x").is_err());
        assert!(check_redirect_uri("/cb").is_err());
    }

    #[test]
    fn secrets_hash_under_the_key_and_compare() {
        let h = SecretHasher::new("k1-0123456789012345678901234567890");
        let other = SecretHasher::new("k2-0123456789012345678901234567890");
        let stored = h.hash("s3cret");
        assert!(h.matches("s3cret", &stored));
        assert!(!h.matches("s3cret!", &stored));
        assert!(!other.matches("s3cret", &stored));
        assert!(!h.matches("s3cret", &[]));
    }

    #[test]
    fn the_shipped_seed_of_make_run_is_valid() {
        let seed = Seed::parse(include_str!("../../../deploy/partners.toml")).unwrap();
        assert!(seed.people.iter().any(|p| p.role == "contact"));
        assert!(seed.people.iter().any(|p| p.role != "contact"));
    }

    #[test]
    fn seed_refuses_weak_secrets_and_unknown_idps() {
        let weak = ONE_OF_EACH.replace(
            "\"0123456789012345678901234567890123456789abcd\"",
            "\"short\"",
        );
        let weak = weak.as_str();
        let err = Seed::parse(weak).unwrap_err().to_string();
        assert!(err.contains("256 bits"), "{err}");
        let unknown = weak
            .replace(
                "\"short\"",
                "\"0123456789012345678901234567890123456789abcd\"",
            )
            .replace("idp_ids = [\"idp\"]", "idp_ids = [\"nope\"]");
        let err = Seed::parse(&unknown).unwrap_err().to_string();
        assert!(err.contains("unknown identity provider nope"), "{err}");
    }

    #[test]
    fn single_sign_on_levels_and_state_length_are_checked() {
        let base = ONE_OF_EACH.replace(
            "acr_values = [\"eidas1\"]\nidp_ids",
            "acr_values = [\"eidas1\", \"eidas2\"]\nidp_ids",
        );
        let base = base.as_str();
        let seed = Seed::parse(base).unwrap();
        let sp = &seed.service_providers[0];
        assert!(!sp.sso, "single sign-on is asked for, never assumed");
        assert_eq!(sp.min_random_length, 43);
        let ok =
            format!("{base}sso = true\nsso_acr_values = [\"eidas1\"]\nmin_random_length = 27\n");
        let sp = &Seed::parse(&ok).unwrap().service_providers[0];
        assert!(sp.sso);
        assert_eq!(sp.min_random_length, 27);
        let err = Seed::parse(&format!("{base}sso_acr_values = [\"eidas3\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sso_acr_values"), "{err}");
        for bad in [21, 44] {
            let err = Seed::parse(&format!("{base}min_random_length = {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("min_random_length"), "{err}");
        }
    }

    #[test]
    fn a_seeded_status_is_spelled_as_stored() {
        let seed = Seed::parse(ONE_OF_EACH).unwrap();
        assert_eq!(seed.service_providers[0].status, PartnerStatus::Active);
        let suspended = ONE_OF_EACH.replace(
            "idp_ids = [\"idp\"]",
            "idp_ids = [\"idp\"]\nstatus = \"suspended\"",
        );
        let seed = Seed::parse(&suspended).unwrap();
        assert_eq!(seed.service_providers[0].status, PartnerStatus::Suspended);
        // The bus's spelling is not the seed's.
        let err = Seed::parse(&suspended.replace("\"suspended\"", "\"production\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown status"), "{err}");
    }

    #[test]
    fn a_contact_names_a_seeded_partner_of_a_known_kind() {
        let with = |partner: &str| {
            format!(
                "{ONE_OF_EACH}\n[[people]]\nemail = \"c@sp.example\"\nname = \"C\"\n\
                 role = \"contact\"\npartner = \"{partner}\"\n"
            )
        };
        let seed = Seed::parse(&with("sp:sp")).unwrap();
        assert_eq!(
            seed.people[0].validate(&seed).unwrap(),
            Some((PartnerKind::Sp, "sp".to_string()))
        );
        let seed = Seed::parse(&with("idp:idp")).unwrap();
        assert_eq!(
            seed.people[0].validate(&seed).unwrap(),
            Some((PartnerKind::Idp, "idp".to_string()))
        );
        for bad in ["sp:idp", "rp:sp", "sp"] {
            let err = Seed::parse(&with(bad)).unwrap_err().to_string();
            assert!(err.contains("unknown partner"), "{bad}: {err}");
        }
    }

    #[test]
    fn signing_algorithms_are_the_hubs() {
        let sp = |extra: &str| Seed::parse(&format!("{ONE_OF_EACH}{extra}"));
        let plain = &sp("").unwrap().service_providers[0];
        assert_eq!(plain.id_token_signed_response_alg, Alg::Es256);
        assert_eq!(plain.userinfo_signed_response_alg, None);
        let both = sp(
            "id_token_signed_response_alg = \"RS256\"\nuserinfo_signed_response_alg = \"ES256\"\n",
        )
        .unwrap();
        let both = &both.service_providers[0];
        assert_eq!(both.id_token_signed_response_alg, Alg::Rs256);
        assert_eq!(both.userinfo_signed_response_alg, Some(Alg::Es256));
        let empty = sp("userinfo_signed_response_alg = \"\"\n").unwrap();
        assert_eq!(
            empty.service_providers[0].userinfo_signed_response_alg,
            None
        );
        for bad in [
            "id_token_signed_response_alg = \"HS256\"\n",
            "id_token_signed_response_alg = \"\"\n",
            "userinfo_signed_response_alg = \"none\"\n",
        ] {
            let err = sp(bad).unwrap_err().to_string();
            assert!(err.contains("unsupported algorithm"), "{bad}: {err}");
        }
    }

    #[test]
    fn pkce_is_required_unless_a_confidential_client_is_exempt() {
        let sp = |extra: &str| Seed::parse(&format!("{ONE_OF_EACH}{extra}"));
        assert!(
            !sp("").unwrap().service_providers[0].pkce_exempt,
            "an SP registered without the setting must send PKCE"
        );
        for method in ["client_secret_basic", "client_secret_post"] {
            let seed = sp(&format!(
                "pkce_exempt = true\ntoken_endpoint_auth_method = \"{method}\"\n"
            ))
            .unwrap();
            assert!(seed.service_providers[0].pkce_exempt, "{method}");
        }
        // A public client has nothing but PKCE to bind its code to it.
        let err = sp("pkce_exempt = true\ntoken_endpoint_auth_method = \"none\"\n").unwrap_err();
        assert!(
            matches!(&err, RegistryError::PkceExemptPublicClient(id) if id == "sp"),
            "{err:?}"
        );
        assert!(err.to_string().contains("pkce_exempt"), "{err}");
    }

    /// One IdP and one SP with every field valid.
    const ONE_OF_EACH: &str = r#"
[[identity_providers]]
id = "idp"
name = "IdP"
issuer = "http://127.0.0.1:1"
client_id = "hub"
client_secret = "x"
acr_values = ["eidas1"]
scopes = ["openid"]

[[service_providers]]
client_id = "sp"
name = "SP"
client_secret = "0123456789012345678901234567890123456789abcd"
redirect_uris = ["https://sp/cb"]
scopes = ["openid"]
claims = []
acr_values = ["eidas1"]
idp_ids = ["idp"]
"#;

    #[test]
    fn a_backchannel_logout_uri_is_https_without_fragment() {
        let base = ONE_OF_EACH;
        assert!(
            Seed::parse(base).unwrap().service_providers[0]
                .backchannel_logout_uri
                .is_none()
        );
        for good in [
            "https://sp.example/bcl?tenant=a",
            "http://127.0.0.1:8700/bcl",
        ] {
            let seed = Seed::parse(&format!("{base}backchannel_logout_uri = \"{good}\"\n"));
            assert!(seed.is_ok(), "{good}: {seed:?}");
        }
        // Tokens sent in clear to the network, or to a URL the spec forbids.
        for bad in ["http://sp.example/bcl", "https://sp.example/bcl#x", "/bcl"] {
            let err = Seed::parse(&format!("{base}backchannel_logout_uri = \"{bad}\"\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }
}
