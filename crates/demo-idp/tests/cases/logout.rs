//! RP-initiated logout at `/end_session`.

use reqwest::StatusCode;
use reqwest::header::LOCATION;
use url::Url;

use super::support::{LOGOUT_URI, TestIdp, location};

async fn end_session(idp: &TestIdp, params: &[(&str, &str)]) -> reqwest::Response {
    let mut url = Url::parse(&idp.url("/end_session")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    idp.http.get(url).send().await.unwrap()
}

#[tokio::test]
async fn goes_back_to_a_registered_uri_with_the_state() {
    let idp = TestIdp::start().await;
    let tokens = idp.tokens("jean", None, &[]).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let response = end_session(
        &idp,
        &[
            ("id_token_hint", hint),
            ("post_logout_redirect_uri", LOGOUT_URI),
            ("state", "bye-1"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (url, query) = location(&response);
    assert!(url.as_str().starts_with(LOGOUT_URI));
    assert_eq!(query["state"], "bye-1");
}

#[tokio::test]
async fn without_a_trustworthy_redirect_shows_a_signed_out_page() {
    let idp = TestIdp::start().await;
    let tokens = idp.tokens("jean", None, &[]).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let forged = idp.tokens("jean", Some("bad_signature"), &[]).await;
    let forged = forged["id_token"].as_str().unwrap();
    for params in [
        vec![
            ("id_token_hint", hint),
            ("post_logout_redirect_uri", "https://elsewhere.example/"),
        ],
        vec![
            ("id_token_hint", hint),
            ("post_logout_redirect_uri", "http://127.0.0.1:9/logged-out/"),
        ],
        vec![
            ("id_token_hint", forged),
            ("post_logout_redirect_uri", LOGOUT_URI),
        ],
        vec![("post_logout_redirect_uri", LOGOUT_URI)],
        vec![
            ("id_token_hint", hint),
            ("post_logout_redirect_uri", LOGOUT_URI),
            ("client_id", "sp-other"),
        ],
        vec![],
    ] {
        let response = end_session(&idp, &params).await;
        assert_eq!(response.status(), StatusCode::OK, "{params:?}");
        assert!(!response.headers().contains_key(LOCATION));
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("Vous êtes déconnecté")
        );
    }
}
