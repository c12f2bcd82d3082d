//! What the SP refuses, and how it shows a provider's error.

use reqwest::StatusCode;

use super::support::Stack;

async fn error_page(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn a_callback_with_a_wrong_state_is_refused() {
    let stack = Stack::start().await;
    stack.start_login(&[]).await;
    let iss = stack.idp.issuer().to_owned();
    let response = stack
        .browser
        .get(stack.sp_url("/callback"))
        .query(&[
            ("code", "forged"),
            ("state", "not-the-state"),
            ("iss", &iss),
        ])
        .send()
        .await
        .unwrap();
    let (status, page) = error_page(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("state_mismatch"), "{page}");

    // A browser that never started a sign-in has no session at all.
    let stranger = reqwest::Client::new()
        .get(stack.sp_url("/callback?code=x&state=y"))
        .send()
        .await
        .unwrap();
    let (status, page) = error_page(stranger).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("no_session"));
}

#[tokio::test]
async fn an_answer_from_another_issuer_is_refused() {
    let stack = Stack::start().await;
    let authorize = url::Url::parse(&stack.start_login(&[]).await).unwrap();
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let response = stack
        .browser
        .get(stack.sp_url("/callback"))
        .query(&[
            ("code", "x"),
            ("state", &state),
            ("iss", "http://127.0.0.1:1"),
        ])
        .send()
        .await
        .unwrap();
    let (status, page) = error_page(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("issuer_mismatch"), "{page}");
}

#[tokio::test]
async fn faulty_providers_are_refused_with_a_clear_code() {
    let stack = Stack::start().await;
    let eidas2 = [("acr_values", "eidas2")];
    for (scenario, identity, query, code) in [
        ("error_response", "jean", &[][..], "access_denied"),
        ("token_error", "jean", &[][..], "server_error"),
        ("bad_signature", "jean", &[][..], "invalid_id_token"),
        ("wrong_nonce", "jean", &[][..], "invalid_id_token"),
        ("wrong_issuer", "jean", &[][..], "invalid_id_token"),
        ("wrong_audience", "jean", &[][..], "invalid_id_token"),
        ("expired_id_token", "jean", &[][..], "invalid_id_token"),
        ("lower_acr", "marie-helene", &eidas2[..], "acr_too_low"),
        ("none", "camille", &eidas2[..], "acr_too_low"),
        ("userinfo_sub_mismatch", "jean", &[][..], "userinfo_failed"),
    ] {
        let response = stack.sign_in(query, identity, scenario).await;
        let (status, page) = error_page(response).await;
        assert!(
            status.is_client_error() || status.is_server_error(),
            "{scenario}: {status}"
        );
        assert!(page.contains(code), "{scenario}: {page}");
        assert!(page.contains("La connexion a échoué"), "{scenario}");
    }
}
