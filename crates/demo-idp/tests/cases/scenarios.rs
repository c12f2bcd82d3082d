//! Each failure scenario produces the faulty answer it promises.

use std::time::{Duration, Instant};

use relais_demo_idp::Scenario;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::support::{CLIENT_ID, TestIdp, location, payload};

const VERIFIER: &str = "a-pkce-verifier-that-is-long-enough-0123456789";

/// Logs in under `scenario` (chosen on the form) and returns the ID token and userinfo.
async fn run(
    idp: &TestIdp,
    identity: &str,
    scenario: &str,
    extra: &[(&str, &str)],
) -> (String, Value) {
    let tokens = idp.tokens(identity, Some(scenario), extra).await;
    let userinfo: Value = idp
        .userinfo(tokens["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    (tokens["id_token"].as_str().unwrap().to_owned(), userinfo)
}

#[tokio::test]
async fn none_is_correct() {
    let idp = TestIdp::start().await;
    let (id_token, userinfo) = run(&idp, "jean", "none", &[]).await;
    let claims = idp.verify(&id_token).await.unwrap();
    assert_eq!(claims["sub"], userinfo["sub"]);
    assert_eq!(claims["email"], userinfo["email"]);
}

#[tokio::test]
async fn delay_waits_before_the_token_response() {
    let idp = TestIdp::start().await;
    idp.handle.set_delay(Duration::from_millis(400));
    let login = idp.login("jean", Some("delay"), &[]).await;
    let started = Instant::now();
    assert_eq!(
        idp.token(&login.code, Some(&login.verifier)).await.status(),
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn error_response_sends_access_denied_back() {
    let idp = TestIdp::start().await;
    // Set globally: the form preselects it and a form without a choice follows it.
    idp.handle.set_scenario(Scenario::ErrorResponse);
    let (html, request_id) = idp.login_page(&[], VERIFIER).await;
    assert!(html.contains("value=\"error_response\" selected"));
    let response = idp.submit(&request_id, "jean", None).await;
    let (_, query) = location(&response);
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], "state-123");
    assert_eq!(query["iss"], idp.handle.issuer());
    assert!(!query.contains_key("code"));
}

#[tokio::test]
async fn token_error_answers_500() {
    let idp = TestIdp::start().await;
    let login = idp.login("jean", Some("token_error"), &[]).await;
    let response = idp.token(&login.code, Some(&login.verifier)).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn bad_signature_fails_verification_under_the_published_kid() {
    let idp = TestIdp::start().await;
    let (id_token, _) = run(&idp, "jean", "bad_signature", &[]).await;
    assert!(idp.verify(&id_token).await.is_err());
    let jwks: Value = idp
        .http
        .get(idp.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = josekit::jwt::decode_header(&id_token).unwrap();
    assert_eq!(header.claim("kid").unwrap(), &jwks["keys"][0]["kid"]);
}

#[tokio::test]
async fn id_token_claim_scenarios_break_the_claim_they_name() {
    let idp = TestIdp::start().await;
    let (id_token, _) = run(&idp, "jean", "wrong_nonce", &[]).await;
    let claims = idp.verify(&id_token).await.unwrap();
    assert_ne!(claims["nonce"], "nonce-456");

    let (id_token, _) = run(&idp, "jean", "wrong_issuer", &[]).await;
    let claims = idp.verify(&id_token).await.unwrap();
    assert_ne!(claims["iss"], idp.handle.issuer());

    let (id_token, _) = run(&idp, "jean", "wrong_audience", &[]).await;
    let claims = idp.verify(&id_token).await.unwrap();
    assert_ne!(claims["aud"], CLIENT_ID);

    let (id_token, _) = run(&idp, "jean", "expired_id_token", &[]).await;
    let claims = idp.verify(&id_token).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(claims["exp"].as_i64().unwrap() < now - 300);
}

#[tokio::test]
async fn missing_claim_drops_email_everywhere() {
    let idp = TestIdp::start().await;
    let (id_token, userinfo) = run(&idp, "jean", "missing_claim", &[]).await;
    assert!(payload(&id_token).get("email").is_none());
    assert!(userinfo.get("email").is_none());
    assert_eq!(userinfo["given_name"], "Jean Pierre");
}

#[tokio::test]
async fn lower_acr_gives_one_level_below_what_was_asked() {
    let idp = TestIdp::start().await;
    let (id_token, _) = run(
        &idp,
        "marie-helene",
        "lower_acr",
        &[("acr_values", "eidas2 eidas3")],
    )
    .await;
    let claims = payload(&id_token);
    assert_eq!(claims["acr"], "eidas1");
    assert_eq!(claims["amr"], json!(["pwd"]));
    let (id_token, _) = run(
        &idp,
        "marie-helene",
        "lower_acr",
        &[("acr_values", "eidas1")],
    )
    .await;
    assert!(
        payload(&id_token).get("acr").is_none(),
        "nothing is below eidas1"
    );
}

#[tokio::test]
async fn an_identity_below_the_level_asked_still_gets_its_own_level() {
    let idp = TestIdp::start().await;
    let (id_token, _) = run(&idp, "camille", "none", &[("acr_values", "eidas3")]).await;
    assert_eq!(payload(&id_token)["acr"], "eidas1");
}

#[tokio::test]
async fn userinfo_sub_mismatch_changes_userinfo_sub() {
    let idp = TestIdp::start().await;
    let (id_token, userinfo) = run(&idp, "jean", "userinfo_sub_mismatch", &[]).await;
    assert_ne!(payload(&id_token)["sub"], userinfo["sub"]);
}

#[tokio::test]
async fn the_form_choice_overrides_the_global_scenario() {
    let idp = TestIdp::start().await;
    idp.handle.set_scenario(Scenario::TokenError);
    let login = idp.login("jean", Some("none"), &[]).await;
    assert_eq!(
        idp.token(&login.code, Some(&login.verifier)).await.status(),
        StatusCode::OK
    );
    let login = idp.login("jean", None, &[]).await;
    assert_eq!(
        idp.token(&login.code, Some(&login.verifier)).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
}
