//! Each refusal: the right answer, nothing half done, and a trace where one is due.

use relais_proto::registry::v1 as reg;
use reqwest::StatusCode;

use crate::harness::*;

fn error_code_of(page: &str) -> bool {
    !page.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_refusals() {
    let stack = Stack::start().await;
    let hub = stack.hub.clone();
    let browser = Browser::new();

    // A redirect URI not registered exactly: a page, never a redirect.
    for bad in [
        "http://127.0.0.1:9/a/callback/",
        "http://127.0.0.1:9/a/callback?x=1",
        "http://127.0.0.1:9/a/callbac",
        "https://127.0.0.1:9/a/callback",
        "http://evil.example/a/callback",
    ] {
        let mut req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
        req.redirect_uri = Box::leak(bad.to_string().into_boxed_str());
        let (status, page) = browser.get(&req.url(&hub)).await.page();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(page.contains("redirect_uri_mismatch"), "{bad}: {page}");
    }
    // Unknown client: a page.
    let req = AuthRequest::new("nobody", REDIRECT_A, "openid");
    let (_, page) = browser.get(&req.url(&hub)).await.page();
    assert!(page.contains("unknown_client"), "{page}");

    // Other bad parameters go back to the SP with error, state and iss.
    let cases: Vec<(AuthRequest, &str, &str)> = vec![
        (
            AuthRequest::new(SP_A, REDIRECT_A, "openid siret"),
            "invalid_scope",
            "scope_not_allowed",
        ),
        (
            AuthRequest::new(SP_A, REDIRECT_A, "openid").with("acr_values", "eidas3"),
            "invalid_request",
            "acr_not_allowed",
        ),
        (
            AuthRequest::new(SP_A, REDIRECT_A, "openid").with("response_type", "token"),
            "invalid_request",
            "duplicate_parameter",
        ),
        (
            AuthRequest::new(SP_A, REDIRECT_A, "email"),
            "invalid_scope",
            "openid_scope_missing",
        ),
    ];
    for (req, error, code) in cases {
        let back = browser.get(&req.url(&hub)).await.at_sp();
        assert_eq!(query(&back, "error").as_deref(), Some(error), "{back}");
        assert!(
            query(&back, "error_description").unwrap().contains(code),
            "{back}"
        );
        assert_eq!(query(&back, "state").as_deref(), Some(req.state.as_str()));
        assert_eq!(query(&back, "iss").as_deref(), Some(hub.as_str()));
    }
    let mut short = AuthRequest::new(SP_A, REDIRECT_A, "openid");
    short.state = "too-short".into();
    let back = browser.get(&short.url(&hub)).await.at_sp();
    assert!(
        query(&back, "error_description")
            .unwrap()
            .contains("state_too_short")
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_client_is_refused_at_once() {
    let stack = Stack::start().await;
    stack
        .registry
        .clone()
        .set_service_provider_status(reg::SetStatusRequest {
            id: SP_A.into(),
            status: reg::PartnerStatus::Suspended as i32,
            reason: "test".into(),
        })
        .await
        .unwrap();
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid");
    let (status, page) = browser.get(&req.url(&stack.hub)).await.page();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("client_suspended"), "{page}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_are_single_use_and_bound_to_their_client() {
    let stack = Stack::start().await;
    let hub = stack.hub.clone();
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let code = req.code(&sign_in(&stack, &browser, &req, "camille").await.at_sp());

    // Another client presenting the code: refused.
    let (status, body) = token(&hub, SP_B, SECRET_B, &code, REDIRECT_A, false).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_code"], "code_client_mismatch");

    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let code = req.code(&sign_in(&stack, &browser, &req, "camille").await.at_sp());
    // Wrong secret, then a wrong redirect_uri: nothing consumed by the first.
    let (status, body) = token(&hub, SP_A, "wrong-secret", &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    let (status, tokens) = token(&hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    assert_eq!(userinfo(&hub, &access).await.0, StatusCode::OK);

    // Replay: refused, and the tokens issued from the code are revoked.
    let (status, body) = token(&hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_code"], "code_reused");
    let (status, body) = userinfo(&hub, &access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // A client authenticating with a method other than its registered one.
    let (status, body) = token(&hub, SP_B, SECRET_B, &Code::bare("x"), REDIRECT_B, true).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error_code"], "client_auth_method_mismatch");
    assert!(error_code_of(&body.to_string()));
    stack.stop().await;
}

/// Each failure the demo IdP can play ends in an error page naming it, and a trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_failures_end_cleanly() {
    let stack = Stack::start_with(Options {
        idp_timeout_ms: 1_000,
        ..Options::default()
    })
    .await;
    stack.idp.set_delay(std::time::Duration::from_millis(3_000));
    // The IdP's own `access_denied` (error_response) goes back to the SP instead:
    // `failures_lead_back_to_the_sp_or_to_another_account`.
    let cases = [
        ("token_error", "idp_token_request_failed"),
        ("delay", "idp_token_request_failed"),
        ("bad_signature", "idp_signature_invalid"),
        ("wrong_nonce", "idp_nonce_mismatch"),
        ("wrong_issuer", "idp_token_issuer_mismatch"),
        ("wrong_audience", "idp_audience_mismatch"),
        ("expired_id_token", "idp_id_token_expired"),
        ("missing_claim", "idp_claim_missing"),
        ("lower_acr", "idp_acr_too_low"),
        ("userinfo_sub_mismatch", "idp_userinfo_sub_mismatch"),
        ("invalid_claim", "idp_claim_invalid"),
        ("bad_at_hash", "idp_at_hash_mismatch"),
        ("symmetric_signature", "idp_signature_invalid"),
    ];
    for (scenario, code) in cases {
        stack.set_scenario(parse_demo_scenario(scenario));
        let browser = Browser::new();
        let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email").with("acr_values", "eidas2");
        let (status, page) = sign_in(&stack, &browser, &req, "jean").await.page();
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{scenario}: {page}");
        assert!(page.contains(code), "{scenario}: expected {code} in {page}");
    }
    // Each left a failed connection with its code.
    let conns = stack
        .connections_until(SP_A, "", |c| {
            c.iter().filter(|c| c.outcome == "failed").count() >= cases.len()
        })
        .await;
    for (_, code) in cases {
        assert!(
            conns
                .iter()
                .any(|c| c.error_code == code && c.idp_id == "demo-idp"),
            "no failed connection with {code}"
        );
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_hint_skips_the_chooser_and_callbacks_are_bound_to_the_browser() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email").with("idp_hint", "demo-idp");
    let (status, login) = browser.get(&req.url(&stack.hub)).await.page();
    assert_eq!(status, StatusCode::OK);
    assert!(
        input_value(&login, "request_id").is_some(),
        "straight to the IdP: {login}"
    );

    // The IdP's answer replayed in another browser (no flow cookie) is refused.
    let r = browser
        .submit_login(stack.idp.issuer(), &login, "camille", "none", "login")
        .await;
    let callback = r.headers()["location"].to_str().unwrap().to_string();
    let (status, page) = Browser::new().get(&callback).await.page();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("flow_expired"), "{page}");
    // The rightful browser still completes.
    let back = browser.get(&callback).await.at_sp();
    assert!(query(&back, "code").is_some());
    // And the same callback again is refused.
    let (_, page) = browser.get(&callback).await.page();
    assert!(page.contains("flow_expired"), "{page}");
    stack.stop().await;
}

/// Once the SP's redirect URI is trusted, no failure is a dead end: the IdP's own refusal
/// goes back to the SP, any other failure offers the way back (with the OAuth error,
/// state, iss and the stable code) and another account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_lead_back_to_the_sp_or_to_another_account() {
    let stack = Stack::start().await;
    // The user cancels at the IdP.
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let (_, chooser) = browser.get(&req.url(&stack.hub)).await.page();
    let (_, login) = browser
        .choose(&stack.hub, &chooser, "demo-idp")
        .await
        .page();
    let r = browser
        .submit_login(stack.idp.issuer(), &login, "", "none", "cancel")
        .await;
    let back = browser.follow(r).await.at_sp();
    assert_eq!(query(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(query(&back, "state").as_deref(), Some(req.state.as_str()));
    assert_eq!(query(&back, "iss").as_deref(), Some(stack.hub.as_str()));
    assert!(
        query(&back, "error_description")
            .unwrap()
            .contains("idp_access_denied")
    );

    // The IdP gives too low a level: a page with both ways out.
    stack.set_scenario(parse_demo_scenario("lower_acr"));
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email").with("acr_values", "eidas2");
    let (status, page) = sign_in(&stack, &browser, &req, "jean").await.page();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{page}");
    assert!(page.contains("Retour à Service A"), "{page}");
    let link = regex::Regex::new(r#"<a href="([^"]+)">Retour à"#).unwrap();
    let back: url::Url = link.captures(&page).unwrap()[1]
        .replace("&amp;", "&")
        .parse()
        .unwrap();
    assert_eq!(back.host_str(), Some("127.0.0.1"));
    assert_eq!(back.path(), "/a/callback");
    assert_eq!(
        query(&back, "error").as_deref(),
        Some("unmet_authentication_requirements")
    );
    assert_eq!(query(&back, "state").as_deref(), Some(req.state.as_str()));
    assert_eq!(query(&back, "iss").as_deref(), Some(stack.hub.as_str()));
    assert!(
        query(&back, "error_description")
            .unwrap()
            .contains("idp_acr_too_low")
    );
    // Another account: the chooser again, and this time the IdP gives the level.
    assert!(page.contains(r#"<a href="/chooser">"#), "{page}");
    stack.set_scenario(parse_demo_scenario("none"));
    let (status, chooser) = browser.get(&format!("{}/chooser", stack.hub)).await.page();
    assert_eq!(status, StatusCode::OK, "{chooser}");
    let (_, login) = browser
        .choose(&stack.hub, &chooser, "demo-idp")
        .await
        .page();
    let back = browser
        .login(stack.idp.issuer(), &login, "jean", "none")
        .await
        .at_sp();
    assert_eq!(query(&back, "state").as_deref(), Some(req.state.as_str()));
    let code = req.code(&back);
    let (status, _) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK);
    stack.stop().await;
}
