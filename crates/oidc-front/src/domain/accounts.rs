//! Whose account an IdP identity is: per IdP subject (ProConnect's way: each IdP's
//! account of a person is a hub account), or per person from the pivot identity
//! (FranceConnect's way: the same person through any IdP is one account, so one `sub` at
//! each SP).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

/// The deployment's choice (`oidc_front.accounts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountMapping {
    /// One account per (IdP, IdP subject).
    #[default]
    IdpSubject,
    /// One account per person: given names, family name, birth date, gender, birth place
    /// and country.
    PivotIdentity,
}

/// The pivot identity, in the order it is hashed. `birthplace` is empty for a person born
/// abroad.
pub const PIVOT_CLAIMS: [&str; 6] = [
    "given_name",
    "family_name",
    "birthdate",
    "gender",
    "birthplace",
    "birthcountry",
];

/// The scope that asks an IdP for it.
pub const PIVOT_SCOPE: &str = "identite_pivot";

/// Which claims of the pivot identity an IdP must give.
pub fn pivot_required() -> impl Iterator<Item = &'static str> {
    PIVOT_CLAIMS.into_iter().filter(|c| *c != "birthplace")
}

/// The account key of a person: HMAC-SHA256 under the hub's key of each normalised field,
/// each preceded by its length, so no two identities hash alike by shifting characters
/// between fields. None when a required field is missing or not text.
pub fn pivot_key(key: &[u8], claims: &Map<String, Value>) -> Option<Vec<u8>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(b"relais pivot identity v1");
    for name in PIVOT_CLAIMS {
        let value = match claims.get(name) {
            Some(Value::String(s)) => normalise(s),
            None | Some(Value::Null) if name == "birthplace" => String::new(),
            _ => return None,
        };
        if value.is_empty() && name != "birthplace" {
            return None;
        }
        mac.update(&(value.len() as u64).to_be_bytes());
        mac.update(value.as_bytes());
    }
    Some(mac.finalize().into_bytes().to_vec())
}

/// The id a new account gets: derived under the hub's key from what finds the account
/// (the pivot identity's key, or the IdP and its subject, each preceded by its length),
/// so that a sign-in can write the account, its session and its grant in one statement
/// without first reading the account. A UUID of version 8, never equal to the random
/// (version 4) id of an account created before.
pub fn account_id(key: &[u8], idp_id: &str, sub_fi: &str, pivot: Option<&[u8]>) -> Option<Uuid> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    match pivot {
        Some(pivot) => {
            mac.update(b"relais account of a pivot identity v1");
            mac.update(pivot);
        }
        None => {
            mac.update(b"relais account of an IdP subject v1");
            for part in [idp_id, sub_fi] {
                mac.update(&(part.len() as u64).to_be_bytes());
                mac.update(part.as_bytes());
            }
        }
    }
    let digest = mac.finalize().into_bytes();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Some(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

/// One spelling per name: Unicode NFC, lower case, single spaces, no edge spaces.
fn normalise(s: &str) -> String {
    s.nfc()
        .collect::<String>()
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn marie() -> Value {
        json!({
            "given_name": "Marie-Hélène", "family_name": "Durand", "birthdate": "1980-02-29",
            "gender": "female", "birthplace": "75107", "birthcountry": "99100"
        })
    }

    #[test]
    fn one_person_is_one_key_whatever_the_spelling_of_the_idp() {
        let key = b"pivot-key-of-at-least-thirty-two-bytes";
        let a = pivot_key(key, &claims(marie())).unwrap();
        // Decomposed accents, capitals and spaces as another IdP may send them.
        let mut other = marie();
        other["given_name"] = json!("  MARIE-HE\u{301}LE\u{300}NE ");
        other["family_name"] = json!("durand");
        assert_eq!(pivot_key(key, &claims(other)), Some(a.clone()));
        // Another key, another hash.
        assert_ne!(
            pivot_key(b"another-key-of-at-least-thirty-two-byte", &claims(marie())),
            Some(a)
        );
    }

    #[test]
    fn an_account_id_is_the_same_for_the_same_person_and_never_a_random_ids() {
        let key = b"pivot-key-of-at-least-thirty-two-bytes";
        let a = account_id(key, "idp-1", "sub-a", None).unwrap();
        assert_eq!(account_id(key, "idp-1", "sub-a", None), Some(a));
        assert_eq!(a.get_version_num(), 8);
        // Another subject, another IdP, the parts shifted, another key: another id.
        assert_ne!(account_id(key, "idp-1", "sub-b", None), Some(a));
        assert_ne!(account_id(key, "idp-2", "sub-a", None), Some(a));
        assert_ne!(
            account_id(key, "idp-1s", "ub-a", None),
            Some(a),
            "parts run into each other"
        );
        assert_ne!(
            account_id(
                b"another-key-of-at-least-thirty-two-byte",
                "idp-1",
                "sub-a",
                None
            ),
            Some(a)
        );
        // By pivot identity, the IdP does not matter.
        let pivot = pivot_key(key, &claims(marie())).unwrap();
        let p = account_id(key, "idp-1", "sub-a", Some(&pivot)).unwrap();
        assert_eq!(account_id(key, "idp-2", "other", Some(&pivot)), Some(p));
        assert_ne!(p, a);
    }

    #[test]
    fn fields_do_not_run_into_each_other_and_missing_ones_fail() {
        let key = b"pivot-key-of-at-least-thirty-two-bytes";
        let mut a = marie();
        a["given_name"] = json!("Ann");
        a["family_name"] = json!("Adurand");
        let mut b = marie();
        b["given_name"] = json!("Anna");
        b["family_name"] = json!("Durand");
        assert_ne!(pivot_key(key, &claims(a)), pivot_key(key, &claims(b)));
        // Born abroad: no birth place, still a key.
        let mut abroad = marie();
        abroad.as_object_mut().unwrap().remove("birthplace");
        assert!(pivot_key(key, &claims(abroad)).is_some());
        let mut missing = marie();
        missing.as_object_mut().unwrap().remove("birthdate");
        assert!(pivot_key(key, &claims(missing)).is_none());
        let mut empty = marie();
        empty["gender"] = json!("");
        assert!(pivot_key(key, &claims(empty)).is_none());
    }
}
