#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use relais_proto::registry::v1::{BindPersonRequest, FindPersonRequest, ListContactsRequest};
use tonic::Code;

use crate::common::{BASIC_SECRET, Registry, error_code, seed};
use crate::seeding::refused;

#[tokio::test]
async fn contacts_and_staff_are_found_by_address_in_any_case() {
    let mut registry = Registry::start(&seed(BASIC_SECRET)).await;
    let find = |email: &str| FindPersonRequest {
        email: email.into(),
    };

    let contact = registry
        .client
        .find_person(find("OPS@sp-basic.EXAMPLE"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(contact.email, "ops@sp-basic.example");
    assert_eq!(contact.name, "Camille Ops");
    assert_eq!(contact.role, "contact");
    assert_eq!(
        (contact.partner_kind.as_str(), contact.partner_id.as_str()),
        ("sp", "sp-basic")
    );

    let staff = registry
        .client
        .find_person(find("n2@relais.example"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(staff.role, "level2");
    assert_eq!(
        (staff.partner_kind.as_str(), staff.partner_id.as_str()),
        ("", "")
    );

    // Nobody else, not even a near miss.
    for stranger in ["ops@sp-basic.example.evil", "", "n2@relais.example "] {
        let unknown = registry
            .client
            .find_person(find(stranger))
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::NotFound, "{stranger:?}");
        assert_eq!(error_code(&unknown), "unknown_person");
    }

    // A partner's contacts: staff are nobody's contact, another partner has none.
    let contacts = |kind: &str, id: &str| ListContactsRequest {
        partner_kind: kind.into(),
        partner_id: id.into(),
    };
    let listed = registry
        .client
        .list_contacts(contacts("sp", "sp-basic"))
        .await
        .unwrap()
        .into_inner()
        .contacts;
    assert_eq!(
        listed.iter().map(|p| p.email.as_str()).collect::<Vec<_>>(),
        ["ops@sp-basic.example"]
    );
    for (kind, id) in [("idp", "sp-basic"), ("sp", "sp-other"), ("", "")] {
        let none = registry
            .client
            .list_contacts(contacts(kind, id))
            .await
            .unwrap()
            .into_inner()
            .contacts;
        assert!(none.is_empty(), "{kind}:{id}");
    }

    // A person taken out of the seed is nobody at the next start.
    let without = seed(BASIC_SECRET).replace(
        "email = \"n2@relais.example\"",
        "email = \"n3@relais.example\"",
    );
    registry.restart(&without).await;
    let gone = registry
        .client
        .find_person(find("n2@relais.example"))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let kept = registry
        .client
        .find_person(find("n3@relais.example"))
        .await
        .unwrap();
    assert_eq!(kept.into_inner().role, "level2");
    registry.stop().await;
}

#[tokio::test]
async fn a_contact_must_name_a_known_partner_and_staff_none() {
    let contact = "partner = \"sp:sp-basic\"";
    let message = refused(&seed(BASIC_SECRET).replace(contact, "partner = \"sp:sp-ghost\"")).await;
    assert!(
        message.contains("unknown partner \"sp:sp-ghost\""),
        "{message}"
    );
    let message = refused(&seed(BASIC_SECRET).replace(contact, "")).await;
    assert!(message.contains("a contact needs its partner"), "{message}");
    let message = refused(&seed(BASIC_SECRET).replace(
        "role = \"level2\"",
        "role = \"level2\"\npartner = \"idp:idp-a\"",
    ))
    .await;
    assert!(
        message.contains("support staff act for no partner"),
        "{message}"
    );
}

#[tokio::test]
async fn a_person_with_a_bad_address_an_unknown_role_or_twice_is_refused() {
    let message = refused(&seed(BASIC_SECRET).replace("n2@relais.example", "n2 at relais")).await;
    assert!(message.contains("not an e-mail address"), "{message}");
    let message =
        refused(&seed(BASIC_SECRET).replace("role = \"level2\"", "role = \"admin\"")).await;
    assert!(message.contains("unknown role \"admin\""), "{message}");
    let message =
        refused(&seed(BASIC_SECRET).replace("n2@relais.example", "ops@sp-basic.example")).await;
    assert!(message.contains("listed twice"), "{message}");
}

/// The fixture seed with its contact enrolled at `idp-a` (and `extra` lines after it).
fn enrolled(extra: &str) -> String {
    seed(BASIC_SECRET).replace(
        "partner = \"sp:sp-basic\"\n",
        &format!("partner = \"sp:sp-basic\"\nidp = \"idp-a\"\n{extra}"),
    )
}

async fn binding(registry: &mut Registry, email: &str) -> (String, String) {
    let p = registry
        .client
        .find_person(FindPersonRequest {
            email: email.into(),
        })
        .await
        .unwrap()
        .into_inner();
    (p.idp_id, p.idp_sub)
}

async fn bind(registry: &mut Registry, idp: &str, sub: &str) -> (String, String) {
    let p = registry
        .client
        .bind_person(BindPersonRequest {
            email: "OPS@sp-basic.example".into(),
            idp_id: idp.into(),
            idp_sub: sub.into(),
        })
        .await
        .unwrap()
        .into_inner();
    (p.idp_id, p.idp_sub)
}

#[tokio::test]
async fn a_person_is_bound_once_through_the_enrolled_idp_and_a_reseed_keeps_it() {
    let ops = "ops@sp-basic.example";
    let mut registry = Registry::start(&enrolled("")).await;
    let pair = |idp: &str, sub: &str| (idp.to_owned(), sub.to_owned());
    assert_eq!(binding(&mut registry, ops).await, pair("idp-a", ""));
    // Not through another IdP; then the first use through idp-a, and only that one.
    assert_eq!(bind(&mut registry, "idp-b", "x").await, pair("idp-a", ""));
    assert_eq!(
        bind(&mut registry, "idp-a", "sub-1").await,
        pair("idp-a", "sub-1")
    );
    assert_eq!(
        bind(&mut registry, "idp-a", "sub-2").await,
        pair("idp-a", "sub-1")
    );
    // A reseed keeps the binding while the IdP stays; a new IdP unbinds; a seeded subject wins.
    registry.restart(&enrolled("")).await;
    assert_eq!(binding(&mut registry, ops).await, pair("idp-a", "sub-1"));
    registry.restart(&enrolled("idp_sub = \"sub-9\"\n")).await;
    assert_eq!(binding(&mut registry, ops).await, pair("idp-a", "sub-9"));
    registry
        .restart(&enrolled("").replace("idp = \"idp-a\"", "idp = \"idp-b\""))
        .await;
    assert_eq!(binding(&mut registry, ops).await, pair("idp-b", ""));
    // A person never enrolled with an IdP is never bound.
    let staff = registry
        .client
        .bind_person(BindPersonRequest {
            email: "n2@relais.example".into(),
            idp_id: String::new(),
            idp_sub: "sub-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (staff.idp_id, staff.idp_sub),
        (String::new(), String::new())
    );
    registry.stop().await;
}

#[tokio::test]
async fn an_enrolment_naming_an_unknown_idp_or_a_subject_alone_is_refused() {
    let unknown = refused(&enrolled("").replace("idp = \"idp-a\"", "idp = \"idp-x\"")).await;
    assert!(
        unknown.contains("unknown identity provider idp-x"),
        "{unknown}"
    );
    let alone = refused(&seed(BASIC_SECRET).replace(
        "partner = \"sp:sp-basic\"\n",
        "partner = \"sp:sp-basic\"\nidp_sub = \"sub-1\"\n",
    ))
    .await;
    assert!(alone.contains("idp_sub needs the idp"), "{alone}");
}
