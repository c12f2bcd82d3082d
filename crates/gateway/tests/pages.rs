//! The chooser, logout confirmation, notice and error pages, in French and English.

use relais_proto::oidc_front::v1::flow_response::Outcome;
use relais_proto::oidc_front::v1::{
    Chooser, ChooserIdp, ErrorPage, FlowResponse, LogoutConfirm, Notice,
};

use crate::support::{self, assert_no_store, assert_security_headers};

fn chooser(locale: &str) -> FlowResponse {
    FlowResponse {
        outcome: Some(Outcome::Chooser(Chooser {
            csrf: "csrf-token-1".into(),
            sp_name: "Mairie <de> \"Test\"".into(),
            locale: locale.into(),
            acr_asked: "eidas2".into(),
            acr_rank: 2,
            acr_levels: 3,
            idps: vec![
                ChooserIdp {
                    id: "idp-a".into(),
                    name: "Identité A".into(),
                    available: true,
                    unavailable_reason: String::new(),
                },
                ChooserIdp {
                    id: "idp-b".into(),
                    name: "Identité B".into(),
                    available: false,
                    unavailable_reason: "acr_not_supported".into(),
                },
            ],
        })),
        ..Default::default()
    }
}

async fn page(gw: &support::Harness) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let r = support::http()
        .get(gw.url("/authorize"))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

/// The words of a level come from its place on the ladder oidc-front names, not from its
/// name: a deployment with other level names gets them too, and an unplaced level is shown
/// as it is.
#[tokio::test]
async fn the_level_asked_is_put_in_words_from_its_place_on_the_ladder() {
    let gw = support::start(|_| {}).await;
    let mut answer = chooser("en");
    if let Some(Outcome::Chooser(c)) = answer.outcome.as_mut() {
        c.acr_asked = "https://example.gouv.fr/loa/high".into();
        c.acr_rank = 3;
    }
    gw.fake.answer_flow(answer.clone());
    let (_, _, html) = page(&gw).await;
    assert!(
        html.contains("high (https://example.gouv.fr/loa/high)"),
        "{html}"
    );
    if let Some(Outcome::Chooser(c)) = answer.outcome.as_mut() {
        c.acr_asked = "eidas2".into();
        c.acr_rank = 0;
    }
    gw.fake.answer_flow(answer);
    let (_, _, html) = page(&gw).await;
    assert!(!html.contains("substantial"), "{html}");
    assert!(html.contains("eidas2"), "{html}");
}

#[tokio::test]
async fn chooser_in_french_by_default() {
    let gw = support::start(|_| {}).await;
    gw.fake.answer_flow(chooser(""));
    let (status, headers, html) = page(&gw).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_security_headers(&headers);
    assert_no_store(&headers);
    assert!(html.contains(r#"<html lang="fr">"#), "{html}");
    assert!(
        html.contains(
            "Connexion à <span class=\"sp\">Mairie &lt;de&gt; &quot;Test&quot;</span> avec Relais"
        ),
        "{html}"
    );
    assert!(html.contains("renforcé (eidas2)"), "{html}");
    assert!(html.contains(r#"<form method="post" action="/chooser">"#));
    assert!(html.contains(r#"<input type="hidden" name="csrf" value="csrf-token-1">"#));
    assert!(html.contains(
        r#"<button type="submit" class="idp" name="idp" value="idp-a">Identité A</button>"#
    ));
    assert!(html.contains(
        r#"<button type="submit" class="idp" name="idp" value="idp-b" disabled aria-describedby="idp-reason-2">Identité B</button>"#
    ), "{html}");
    assert!(html.contains(
        r#"<p class="reason" id="idp-reason-2">ne peut pas fournir le niveau de garantie demandé</p>"#
    ));
    assert!(html.contains(r#"<link rel="stylesheet" href="/static/relais.css">"#));
    assert!(!html.contains("<script"));
    assert!(!html.contains("<style"));
}

#[tokio::test]
async fn chooser_in_english() {
    let gw = support::start(|_| {}).await;
    gw.fake.answer_flow(chooser("en"));
    let (_, _, html) = page(&gw).await;
    assert!(html.contains(r#"<html lang="en">"#));
    assert!(html.contains(
        "Sign in to <span class=\"sp\">Mairie &lt;de&gt; &quot;Test&quot;</span> with Relais"
    ));
    assert!(html.contains("substantial (eidas2)"));
    assert!(html.contains("cannot provide the assurance level asked"));
}

#[tokio::test]
async fn the_stylesheet_is_served() {
    let gw = support::start(|_| {}).await;
    let r = support::http()
        .get(gw.url("/static/relais.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/css; charset=utf-8");
    assert_security_headers(r.headers());
    assert!(r.text().await.unwrap().contains(":focus-visible"));
}

#[tokio::test]
async fn error_page_shows_code_message_request_id_and_status() {
    let gw = support::start(|_| {}).await;
    gw.fake.answer_flow(FlowResponse {
        outcome: Some(Outcome::Error(ErrorPage {
            code: "unknown_client".into(),
            message: "Ce service n’est pas reconnu.".into(),
            request_id: "rid-7".into(),
            http_status: 400,
            locale: "fr".into(),
            ..Default::default()
        })),
        ..Default::default()
    });
    let (status, headers, html) = page(&gw).await;
    assert_eq!(status, 400);
    assert_security_headers(&headers);
    assert_no_store(&headers);
    assert!(html.contains(r#"<html lang="fr">"#));
    assert!(html.contains("Ce service n’est pas reconnu."));
    assert!(html.contains(r#"<code class="code">unknown_client</code>"#));
    assert!(html.contains(r#"<code class="request-id">rid-7</code>"#));
    assert!(html.contains(r#"href="/docs/errors#unknown_client""#));
}

/// A failure of a trusted sign-in offers the way back to the service and the chooser; an
/// address that is not a web one is never made a link.
#[tokio::test]
async fn error_page_offers_the_way_back_and_another_account() {
    let gw = support::start(|_| {}).await;
    let failure = |back: &str| FlowResponse {
        outcome: Some(Outcome::Error(ErrorPage {
            code: "idp_acr_too_low".into(),
            message: "Niveau insuffisant.".into(),
            request_id: "rid-8".into(),
            http_status: 502,
            locale: "fr".into(),
            back_url: back.into(),
            sp_name: "Mairie <A>".into(),
            retry_url: "/chooser".into(),
        })),
        ..Default::default()
    };
    gw.fake.answer_flow(failure(
        "https://sp.example/cb?error=access_denied&state=s1",
    ));
    let (status, _, html) = page(&gw).await;
    assert_eq!(status, 502);
    assert!(
        html.contains(r#"<a href="https://sp.example/cb?error=access_denied&amp;state=s1">Retour à Mairie &lt;A&gt;</a>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<a href="/chooser">Choisir un autre compte</a>"#),
        "{html}"
    );
    gw.fake.answer_flow(failure("javascript:alert(1)"));
    let (_, _, html) = page(&gw).await;
    assert!(!html.contains("javascript:"), "{html}");
}

#[tokio::test]
async fn error_page_without_request_id_uses_the_gateways() {
    let gw = support::start(|_| {}).await;
    gw.fake.answer_flow(FlowResponse {
        outcome: Some(Outcome::Error(ErrorPage {
            code: "access_denied".into(),
            message: "Access denied.".into(),
            request_id: String::new(),
            http_status: 403,
            locale: "en".into(),
            ..Default::default()
        })),
        ..Default::default()
    });
    let (status, headers, html) = page(&gw).await;
    assert_eq!(status, 403);
    let id = headers["x-request-id"].to_str().unwrap();
    assert!(html.contains(&format!(r#"<code class="request-id">{id}</code>"#)));
    assert!(html.contains(r#"<html lang="en">"#));
}

#[tokio::test]
async fn notice_page() {
    let gw = support::start(|_| {}).await;
    gw.fake.answer_flow(FlowResponse {
        outcome: Some(Outcome::Notice(Notice {
            code: "signed_out".into(),
            message: "You can close this window.".into(),
            locale: "en".into(),
        })),
        ..Default::default()
    });
    let (status, headers, html) = page(&gw).await;
    assert_eq!(status, 200);
    assert_no_store(&headers);
    assert!(html.contains("<h1>You are signed out</h1>"), "{html}");
    assert!(html.contains("You can close this window."));
}

#[tokio::test]
async fn error_codes_are_documented_where_error_pages_link() {
    let gw = support::start(|_| {}).await;
    let r = support::http()
        .get(gw.url("/docs/errors"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    for code in [
        "redirect_uri_mismatch",
        "client_blocked",
        "service_unavailable",
        "idp_acr_too_low",
    ] {
        assert!(
            html.contains(&format!("id=\"{code}\"")),
            "{code} is not documented"
        );
    }
}

fn logout_confirm(locale: &str, sp_name: &str) -> FlowResponse {
    FlowResponse {
        outcome: Some(Outcome::LogoutConfirm(LogoutConfirm {
            token: "sealed-token-1".into(),
            locale: locale.into(),
            sp_name: sp_name.into(),
        })),
        ..Default::default()
    }
}

/// The logout confirmation: a POST form with the sealed token, one button to sign out and
/// one to stay, no script, in the person's language.
#[tokio::test]
async fn logout_confirmation_page_in_french_and_english() {
    let gw = support::start(|_| {}).await;
    gw.fake.answer_flow(logout_confirm("", "Mairie <de> Test"));
    let (status, headers, html) = page(&gw).await;
    assert_eq!(status, 200);
    assert_security_headers(&headers);
    assert_no_store(&headers);
    assert!(html.contains(r#"<html lang="fr">"#), "{html}");
    assert!(
        html.contains("<h1>Se déconnecter de Relais ?</h1>"),
        "{html}"
    );
    assert!(
        html.contains("<strong>Mairie &lt;de&gt; Test</strong>"),
        "{html}"
    );
    assert!(html.contains(r#"<form method="post" action="/end_session/confirm">"#));
    assert!(html.contains(r#"<input type="hidden" name="token" value="sealed-token-1">"#));
    assert!(html.contains(
        r#"<button type="submit" class="idp" name="answer" value="sign_out">Se déconnecter</button>"#
    ));
    assert!(html.contains(
        r#"<button type="submit" class="idp stay" name="answer" value="stay">Rester connecté</button>"#
    ));
    assert!(!html.contains("<script"));
    assert!(!html.contains("<style"));

    gw.fake.answer_flow(logout_confirm("en", ""));
    let (_, _, html) = page(&gw).await;
    assert!(html.contains(r#"<html lang="en">"#), "{html}");
    assert!(html.contains("<h1>Sign out of Relais?</h1>"), "{html}");
    assert!(html.contains(">Sign out</button>"), "{html}");
    assert!(html.contains(">Stay signed in</button>"), "{html}");
    // No SP named: no line naming one.
    assert!(!html.contains("Asked by"), "{html}");
    assert!(!html.contains("<script"));
}
