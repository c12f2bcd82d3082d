//! The token endpoint's refusals (RFC 6749 §5.2).

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, WWW_AUTHENTICATE};
use serde_json::Value;

use super::support::{
    CLIENT_ID, OTHER_CLIENT_ID, OTHER_SECRET, REDIRECT_URI, SECRET, TestIdp, config,
};

async fn error_of(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    let body: Value = response.json().await.unwrap();
    (status, body["error"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn wrong_client_secret_is_invalid_client() {
    let idp = TestIdp::start().await;
    let login = idp.login("jean", None, &[]).await;
    let response = idp
        .http
        .post(idp.url("/token"))
        .basic_auth(CLIENT_ID, Some("not-the-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", login.code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", login.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key(WWW_AUTHENTICATE));
    assert_eq!(
        error_of(response).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    // The failed attempt did not burn the code.
    assert_eq!(
        idp.token(&login.code, Some(&login.verifier)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn missing_or_double_client_authentication_is_refused() {
    let idp = TestIdp::start().await;
    let login = idp.login("jean", None, &[]).await;
    let anonymous = idp
        .http
        .post(idp.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", login.code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(anonymous).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    let both = idp
        .http
        .post(idp.url("/token"))
        .basic_auth(CLIENT_ID, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", login.code.as_str()),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(both).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
}

#[tokio::test]
async fn wrong_or_missing_pkce_verifier_is_invalid_grant() {
    let idp = TestIdp::start().await;
    let login = idp.login("jean", None, &[]).await;
    let wrong = "another-verifier-of-sufficient-length-0123456789";
    assert_eq!(
        error_of(idp.token(&login.code, Some(wrong)).await).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    let login = idp.login("jean", None, &[]).await;
    assert_eq!(
        error_of(idp.token(&login.code, None).await).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
}

#[tokio::test]
async fn code_reuse_is_invalid_grant_and_revokes_the_token() {
    let idp = TestIdp::start().await;
    let login = idp.login("jean", None, &[]).await;
    let first = idp.token(&login.code, Some(&login.verifier)).await;
    assert_eq!(first.status(), StatusCode::OK);
    let tokens: Value = first.json().await.unwrap();
    let access_token = tokens["access_token"].as_str().unwrap();
    assert_eq!(idp.userinfo(access_token).await.status(), StatusCode::OK);

    assert_eq!(
        error_of(idp.token(&login.code, Some(&login.verifier)).await).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    assert_eq!(
        idp.userinfo(access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn code_is_bound_to_client_and_redirect_uri() {
    let idp = TestIdp::start().await;
    let login = idp.login("jean", None, &[]).await;
    let other_client = idp
        .http
        .post(idp.url("/token"))
        .basic_auth(OTHER_CLIENT_ID, Some(OTHER_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", login.code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", login.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(other_client).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );

    let login = idp.login("jean", None, &[]).await;
    let other_uri = idp
        .http
        .post(idp.url("/token"))
        .basic_auth(CLIENT_ID, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", login.code.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/callback/"),
            ("code_verifier", login.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(other_uri).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
}

#[tokio::test]
async fn unknown_grant_type_and_repeated_parameters_are_refused() {
    let idp = TestIdp::start().await;
    let refresh = idp
        .http
        .post(idp.url("/token"))
        .basic_auth(CLIENT_ID, Some(SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(refresh).await,
        (StatusCode::BAD_REQUEST, "unsupported_grant_type".into())
    );
    let repeated = idp
        .http
        .post(idp.url("/token"))
        .basic_auth(CLIENT_ID, Some(SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=authorization_code&code=a&code=b")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(repeated).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
}

#[tokio::test]
async fn expired_code_is_invalid_grant() {
    let mut config = config();
    config.code_lifetime_secs = 1;
    let idp = TestIdp::start_with(config).await;
    let login = idp.login("jean", None, &[]).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        error_of(idp.token(&login.code, Some(&login.verifier)).await).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
}
