//! The test identities, the eIDAS levels, and which claims each scope releases.

use serde_json::{Map, Value};

/// An eIDAS assurance level, ordered from the weakest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Acr {
    Eidas1,
    Eidas2,
    Eidas3,
}

impl Acr {
    pub const ALL: [Acr; 3] = [Acr::Eidas1, Acr::Eidas2, Acr::Eidas3];

    pub fn as_str(self) -> &'static str {
        match self {
            Acr::Eidas1 => "eidas1",
            Acr::Eidas2 => "eidas2",
            Acr::Eidas3 => "eidas3",
        }
    }

    pub fn parse(value: &str) -> Option<Acr> {
        Acr::ALL.into_iter().find(|acr| acr.as_str() == value)
    }

    /// The level just below, if there is one.
    pub fn lower(self) -> Option<Acr> {
        match self {
            Acr::Eidas1 => None,
            Acr::Eidas2 => Some(Acr::Eidas1),
            Acr::Eidas3 => Some(Acr::Eidas2),
        }
    }

    /// The authentication methods a login at this level stands for.
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            Acr::Eidas1 => &["pwd"],
            Acr::Eidas2 => &["pwd", "otp"],
            Acr::Eidas3 => &["smartcard"],
        }
    }
}

/// A person who can sign in at the demo IdP. All data is made up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestIdentity {
    /// The value of the `identity` field of the login form.
    pub id: &'static str,
    /// The `sub` this IdP gives (public subject type: the same for every client).
    pub sub: &'static str,
    /// The highest level this person can sign in at.
    pub acr: Acr,
    pub given_name: &'static str,
    pub usual_name: &'static str,
    pub family_name: &'static str,
    pub email: &'static str,
    pub uid: &'static str,
    pub siren: &'static str,
    pub siret: &'static str,
    pub organizational_unit: &'static str,
    pub belonging_population: &'static str,
    pub phone_number: &'static str,
    pub chorusdt_matricule: &'static str,
    pub chorusdt_societe: &'static str,
    pub birthdate: &'static str,
    pub gender: &'static str,
    /// INSEE code of the commune of birth.
    pub birthplace: &'static str,
    /// INSEE code of the country of birth (99100 is France).
    pub birthcountry: &'static str,
    pub preferred_username: &'static str,
}

/// At least one identity per level; emails are unique so `login_hint` can select one.
pub const TEST_IDENTITIES: &[TestIdentity] = &[
    TestIdentity {
        id: "camille",
        sub: "c9b1e2f4a0d3472e8f16a3b5d7e9c201",
        acr: Acr::Eidas1,
        given_name: "Camille",
        usual_name: "Martin",
        family_name: "Martin",
        email: "camille.martin@demo-idp.test",
        uid: "cmartin",
        siren: "120001011",
        siret: "12000101100010",
        organizational_unit: "Bureau des usagers",
        belonging_population: "agent",
        phone_number: "+33 1 23 45 67 01",
        chorusdt_matricule: "USER_AGC",
        chorusdt_societe: "CHT",
        birthdate: "1990-04-12",
        gender: "female",
        birthplace: "75107",
        birthcountry: "99100",
        preferred_username: "Martin",
    },
    TestIdentity {
        id: "jean",
        sub: "5f0a77c3d9e14b6a9c2e0b8d4f6a1e33",
        acr: Acr::Eidas2,
        given_name: "Jean Pierre",
        usual_name: "Dupont",
        family_name: "Dupont",
        email: "jean.dupont@demo-idp.test",
        uid: "jdupont",
        siren: "130002017",
        siret: "13000201700015",
        organizational_unit: "Direction du numérique",
        belonging_population: "agent",
        phone_number: "+33 1 23 45 67 02",
        chorusdt_matricule: "USER_JDP",
        chorusdt_societe: "CHT",
        birthdate: "1975-11-03",
        gender: "male",
        birthplace: "69123",
        birthcountry: "99100",
        preferred_username: "Dupont",
    },
    TestIdentity {
        id: "karim",
        sub: "a3e8c1d5b7f94e2a8d6c0f1b3e5a7c45",
        acr: Acr::Eidas2,
        given_name: "Karim",
        usual_name: "Benali",
        family_name: "Benali",
        email: "karim.benali@demo-idp.test",
        uid: "kbenali",
        siren: "217500016",
        siret: "21750001600019",
        organizational_unit: "Service de l'état civil",
        belonging_population: "contractuel",
        phone_number: "+33 1 23 45 67 03",
        chorusdt_matricule: "USER_KBN",
        chorusdt_societe: "VDP",
        birthdate: "1988-02-29",
        gender: "male",
        birthplace: "13055",
        birthcountry: "99100",
        preferred_username: "Benali",
    },
    TestIdentity {
        id: "marie-helene",
        sub: "e71d4b9a2c5f48e3b0a6d8c1f2e4b967",
        acr: Acr::Eidas3,
        given_name: "Marie-Hélène",
        usual_name: "Lefèvre",
        family_name: "Lefèvre-Durand",
        email: "marie-helene.lefevre@demo-idp.test",
        uid: "mhlefevre",
        siren: "180030017",
        siret: "18003001700016",
        organizational_unit: "Inspection générale",
        belonging_population: "agent",
        phone_number: "+33 1 23 45 67 04",
        chorusdt_matricule: "USER_MHL",
        chorusdt_societe: "IGA",
        birthdate: "1969-07-21",
        gender: "female",
        birthplace: "33063",
        birthcountry: "99100",
        preferred_username: "Lefèvre",
    },
];

/// The identity with this form id.
pub fn identity_by_id(id: &str) -> Option<&'static TestIdentity> {
    TEST_IDENTITIES.iter().find(|identity| identity.id == id)
}

/// The identity whose email is `hint`, compared without case.
pub fn identity_by_email(hint: &str) -> Option<&'static TestIdentity> {
    TEST_IDENTITIES
        .iter()
        .find(|identity| identity.email.eq_ignore_ascii_case(hint.trim()))
}

/// The scopes this IdP knows, in the order discovery lists them.
pub const SCOPES: &[&str] = &[
    "openid",
    "profile",
    "identite_pivot",
    "email",
    "given_name",
    "usual_name",
    "family_name",
    "uid",
    "siren",
    "siret",
    "organizational_unit",
    "belonging_population",
    "phone",
    "chorusdt",
    "birthdate",
    "gender",
    "birthplace",
    "birthcountry",
    "preferred_username",
];

/// The claims a scope releases.
pub fn claims_of_scope(scope: &str) -> &'static [&'static str] {
    match scope {
        "openid" => &["sub"],
        "profile" => &[
            "given_name",
            "family_name",
            "birthdate",
            "gender",
            "preferred_username",
        ],
        // FranceConnect's pivot identity.
        "identite_pivot" => &[
            "given_name",
            "family_name",
            "birthdate",
            "gender",
            "birthplace",
            "birthcountry",
        ],
        "phone" => &["phone_number"],
        "chorusdt" => &["chorusdt:matricule", "chorusdt:societe"],
        "email" => &["email"],
        "given_name" => &["given_name"],
        "usual_name" => &["usual_name"],
        "family_name" => &["family_name"],
        "uid" => &["uid"],
        "siren" => &["siren"],
        "siret" => &["siret"],
        "organizational_unit" => &["organizational_unit"],
        "belonging_population" => &["belonging_population"],
        "birthdate" => &["birthdate"],
        "gender" => &["gender"],
        "birthplace" => &["birthplace"],
        "birthcountry" => &["birthcountry"],
        "preferred_username" => &["preferred_username"],
        _ => &[],
    }
}

/// Every claim some scope can release, for discovery.
pub fn all_claims() -> Vec<&'static str> {
    let mut claims = Vec::new();
    for scope in SCOPES {
        for claim in claims_of_scope(scope) {
            if !claims.contains(claim) {
                claims.push(*claim);
            }
        }
    }
    claims
}

impl TestIdentity {
    fn claim(&self, name: &str) -> Option<&'static str> {
        Some(match name {
            "sub" => self.sub,
            "given_name" => self.given_name,
            "usual_name" => self.usual_name,
            "family_name" => self.family_name,
            "email" => self.email,
            "uid" => self.uid,
            "siren" => self.siren,
            "siret" => self.siret,
            "organizational_unit" => self.organizational_unit,
            "belonging_population" => self.belonging_population,
            "phone_number" => self.phone_number,
            "chorusdt:matricule" => self.chorusdt_matricule,
            "chorusdt:societe" => self.chorusdt_societe,
            "birthdate" => self.birthdate,
            "gender" => self.gender,
            "birthplace" => self.birthplace,
            "birthcountry" => self.birthcountry,
            "preferred_username" => self.preferred_username,
            _ => return None,
        })
    }

    /// The claims released by `scopes`, `sub` always included.
    pub fn claims_for_scopes<'a>(
        &self,
        scopes: impl IntoIterator<Item = &'a str>,
    ) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::from(self.sub));
        for scope in scopes {
            for name in claims_of_scope(scope) {
                if let Some(value) = self.claim(name) {
                    claims.insert((*name).into(), Value::from(value));
                }
            }
        }
        claims
    }
}

/// Luhn checksum, which SIREN and SIRET numbers carry.
pub fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn identities_are_well_formed() {
        for acr in Acr::ALL {
            assert!(TEST_IDENTITIES.iter().any(|i| i.acr == acr), "no {acr:?}");
        }
        for identity in TEST_IDENTITIES {
            assert!(luhn_valid(identity.siren), "{}", identity.siren);
            assert!(luhn_valid(identity.siret), "{}", identity.siret);
            assert_eq!(identity.siren.len(), 9);
            assert_eq!(identity.siret.len(), 14);
            assert!(identity.siret.starts_with(identity.siren));
            assert_eq!(
                identity_by_email(&identity.email.to_uppercase()),
                Some(identity)
            );
            for claim in all_claims() {
                assert!(
                    identity.claim(claim).is_some(),
                    "{} lacks {claim}",
                    identity.id
                );
            }
        }
        assert!(!luhn_valid("120001012"));
    }

    #[test]
    fn scopes_release_only_their_claims() {
        let identity = &TEST_IDENTITIES[0];
        let claims = identity.claims_for_scopes(["openid", "chorusdt", "phone"]);
        let mut names: Vec<_> = claims.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "chorusdt:matricule",
                "chorusdt:societe",
                "phone_number",
                "sub"
            ]
        );
        let profile = identity.claims_for_scopes(["profile"]);
        assert!(profile.contains_key("family_name") && !profile.contains_key("email"));
    }

    #[test]
    fn levels_are_ordered() {
        assert!(Acr::Eidas1 < Acr::Eidas2 && Acr::Eidas2 < Acr::Eidas3);
        assert_eq!(Acr::Eidas1.lower(), None);
        assert_eq!(Acr::parse("eidas3").and_then(Acr::lower), Some(Acr::Eidas2));
    }
}
