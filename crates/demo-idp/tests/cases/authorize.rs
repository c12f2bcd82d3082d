//! The authorization endpoint's checks: an error page before the redirect_uri is trusted,
//! an error redirect after.

use reqwest::StatusCode;
use reqwest::header::LOCATION;

use super::support::{REDIRECT_URI, TestIdp, browser, location};

const VERIFIER: &str = "a-pkce-verifier-that-is-long-enough-0123456789";

async fn error_page(idp: &TestIdp, extra: &[(&str, &str)]) -> String {
    let response = idp
        .http
        .get(idp.authorize_url(extra, VERIFIER))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{extra:?}");
    assert!(!response.headers().contains_key(LOCATION), "{extra:?}");
    response.text().await.unwrap()
}

async fn error_redirect(idp: &TestIdp, extra: &[(&str, &str)]) -> String {
    let response = idp
        .http
        .get(idp.authorize_url(extra, VERIFIER))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{extra:?}");
    let (url, query) = location(&response);
    assert!(url.as_str().starts_with(REDIRECT_URI));
    assert_eq!(query["iss"], idp.handle.issuer());
    assert!(query.contains_key("error_description"));
    if !extra.contains(&("state", "")) {
        assert_eq!(query["state"], "state-123");
    }
    query["error"].clone()
}

#[tokio::test]
async fn unregistered_redirect_uri_gets_an_error_page_not_a_redirect() {
    let idp = TestIdp::start().await;
    let html = error_page(&idp, &[("redirect_uri", "https://attacker.example/cb")]).await;
    assert!(html.contains("lang=\"fr\""));
    assert!(html.contains("redirect_uri"));
    // Exact matching: a trailing slash is another URI.
    error_page(&idp, &[("redirect_uri", "http://127.0.0.1:9/callback/")]).await;
    error_page(&idp, &[("redirect_uri", "")]).await;
    let html = error_page(&idp, &[("client_id", "<unknown>")]).await;
    assert!(html.contains("&lt;unknown&gt;") && !html.contains("<unknown>"));
    error_page(&idp, &[("client_id", "")]).await;
}

#[tokio::test]
async fn faulty_requests_go_back_with_an_error() {
    let idp = TestIdp::start().await;
    assert_eq!(
        error_redirect(&idp, &[("response_type", "token")]).await,
        "unsupported_response_type"
    );
    assert_eq!(
        error_redirect(&idp, &[("scope", "email")]).await,
        "invalid_scope"
    );
    assert_eq!(
        error_redirect(&idp, &[("nonce", "")]).await,
        "invalid_request"
    );
    assert_eq!(
        error_redirect(&idp, &[("state", "")]).await,
        "invalid_request"
    );
    assert_eq!(
        error_redirect(&idp, &[("code_challenge_method", "plain")]).await,
        "invalid_request"
    );
    assert_eq!(
        error_redirect(&idp, &[("code_challenge_method", "")]).await,
        "invalid_request"
    );
    assert_eq!(
        error_redirect(&idp, &[("code_challenge", "short")]).await,
        "invalid_request"
    );
    assert_eq!(
        error_redirect(&idp, &[("prompt", "none")]).await,
        "login_required"
    );
}

#[tokio::test]
async fn pkce_is_optional_but_then_no_verifier_is_accepted() {
    let idp = TestIdp::start().await;
    let extra = [("code_challenge", ""), ("code_challenge_method", "")];
    let login = idp.login("jean", None, &extra).await;
    let response = idp.token(&login.code, Some(&login.verifier)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let login = idp.login("jean", None, &extra).await;
    assert_eq!(idp.token(&login.code, None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_login_form_belongs_to_the_browser_that_opened_it() {
    let idp = TestIdp::start().await;
    let (_, request_id) = idp.login_page(&[], VERIFIER).await;
    let stranger = browser()
        .post(idp.url("/authorize/login"))
        .form(&[
            ("request_id", request_id.as_str()),
            ("identity", "jean"),
            ("action", "login"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), StatusCode::BAD_REQUEST);
    assert!(!stranger.headers().contains_key(LOCATION));
    // The rightful browser can still use it, once.
    assert_eq!(
        idp.submit(&request_id, "jean", None).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        idp.submit(&request_id, "jean", None).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn cancelling_goes_back_with_access_denied() {
    let idp = TestIdp::start().await;
    let (_, request_id) = idp.login_page(&[], VERIFIER).await;
    let response = idp
        .http
        .post(idp.url("/authorize/login"))
        .form(&[("request_id", request_id.as_str()), ("action", "cancel")])
        .send()
        .await
        .unwrap();
    let (_, query) = location(&response);
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], "state-123");
    assert!(!query.contains_key("code"));
}

#[tokio::test]
async fn without_hint_the_first_identity_meeting_the_acr_is_preselected() {
    let idp = TestIdp::start().await;
    let (html, _) = idp.login_page(&[("acr_values", "eidas3")], VERIFIER).await;
    assert!(html.contains("value=\"marie-helene\" checked"));
    assert!(html.contains("Niveau de garantie demandé : <strong>eidas3</strong>"));
    let (html, _) = idp.login_page(&[], VERIFIER).await;
    assert!(html.contains("value=\"camille\" checked"));
    assert!(
        html.contains("Vous vous connectez à sp-test"),
        "client_id without sp_name"
    );
}
