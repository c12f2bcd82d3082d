//! The identity schema: every claim an IdP sends is checked (type, length, format)
//! before it can reach an SP. No I/O.

use serde_json::{Map, Value};

/// Why a claim was refused: its name.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidClaim(pub String);

const MAX_TEXT: usize = 256;

fn text(v: &Value) -> Option<&str> {
    v.as_str()
        .filter(|s| !s.is_empty() && s.chars().count() <= MAX_TEXT)
        .filter(|s| !s.chars().any(char::is_control))
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// The Luhn checksum used by SIREN and SIRET numbers.
pub fn luhn(number: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in number.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

fn siren(s: &str) -> bool {
    digits(s, 9) && luhn(s)
}

fn siret(s: &str) -> bool {
    // La Poste's establishments follow their own rule: digit sum multiple of 5.
    digits(s, 14)
        && (luhn(s)
            || (s.starts_with("356000000")
                && s.bytes()
                    .map(|b| u32::from(b - b'0'))
                    .sum::<u32>()
                    .is_multiple_of(5)))
}

/// OIDC `birthdate`: YYYY-MM-DD (a real date), with 0000 for an unknown year, or YYYY.
fn birthdate(s: &str) -> bool {
    if digits(s, 4) {
        return true;
    }
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return false;
    };
    if !(digits(y, 4) && digits(m, 2) && digits(d, 2)) {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i32>(), m.parse::<u8>(), d.parse::<u8>()) else {
        return false;
    };
    let Ok(month) = time::Month::try_from(m) else {
        return false;
    };
    let year = if y == 0 { 2000 } else { y };
    time::Date::from_calendar_date(year, month, d).is_ok()
}

fn phone(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    s.len() <= 32
        && (6..=15).contains(&digits)
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '.' | '-' | '(' | ')'))
}

/// Checks each known claim present; unknown claims are left to the release rules.
pub fn validate(claims: &Map<String, Value>) -> Result<(), InvalidClaim> {
    for (name, value) in claims {
        let ok = match name.as_str() {
            "sub"
            | "given_name"
            | "family_name"
            | "usual_name"
            | "preferred_username"
            | "uid"
            | "organizational_unit"
            | "belonging_population"
            | "chorusdt:matricule"
            | "chorusdt:societe" => text(value).is_some(),
            "email" => text(value).is_some_and(relais_config::is_email_address),
            "siren" => text(value).is_some_and(siren),
            "siret" => text(value).is_some_and(siret),
            "birthdate" => text(value).is_some_and(birthdate),
            "gender" => matches!(value.as_str(), Some("male" | "female")),
            // INSEE codes: a commune (5 characters, Corsica's 2A/2B included), a country.
            "birthplace" => value.as_str().is_some_and(|s| {
                s.is_empty() || (s.len() == 5 && s.chars().all(|c| c.is_ascii_alphanumeric()))
            }),
            "birthcountry" => value.as_str().is_some_and(|s| digits(s, 5)),
            "phone_number" => text(value).is_some_and(phone),
            _ => true,
        };
        if !ok {
            return Err(InvalidClaim(name.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(name: &str, value: Value) -> bool {
        let mut m = Map::new();
        m.insert(name.into(), value);
        validate(&m).is_ok()
    }

    #[test]
    fn good_identities_pass() {
        let m = json!({
            "sub": "abc", "given_name": "Jean Pierre", "family_name": "Dupont",
            "email": "jean.dupont@exemple.gouv.fr", "siren": "732829320",
            "siret": "73282932000074", "birthdate": "1962-08-24", "gender": "male",
            "birthplace": "75107", "birthcountry": "99100", "phone_number": "+33 1 23 45 67 89",
            "chorusdt:matricule": "USER_AGC", "custom": {"any": 1}
        });
        assert_eq!(validate(m.as_object().unwrap()), Ok(()));
        assert!(check("siret", json!("35600000000048")), "La Poste's rule");
        assert!(check("birthdate", json!("0000-03-01")));
        assert!(check("birthdate", json!("1970")));
        assert!(check("birthplace", json!("")));
        assert!(check("birthplace", json!("2A004")));
    }

    #[test]
    fn each_malformed_claim_is_refused() {
        for (name, value) in [
            ("email", json!("not-an-email")),
            ("email", json!("a b@exemple.fr")),
            ("email", json!("a@exemple")),
            ("email", json!(42)),
            ("siret", json!("73282932000075")),
            ("siret", json!("7328293200007")),
            ("siren", json!("732829321")),
            ("birthdate", json!("1962-02-30")),
            ("birthdate", json!("24/08/1962")),
            ("gender", json!("unknown")),
            ("birthcountry", json!("France")),
            ("given_name", json!("")),
            ("given_name", json!("x".repeat(257))),
            ("family_name", json!("Dupont\u{0000}")),
            ("phone_number", json!("call me")),
            ("usual_name", json!(["Dupont"])),
        ] {
            assert!(!check(name, value.clone()), "{name} = {value} passed");
        }
    }
}
