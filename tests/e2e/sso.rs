//! Single sign-on: a hub session serves the SPs that allow it, within what each request
//! asks (`prompt`, `max_age`, `id_token_hint`, acr), and `prompt=none` is answered both
//! ways.

use std::time::Duration;

use reqwest::StatusCode;

use crate::harness::*;

fn with_sso() -> Options {
    Options {
        tweak: |c| c.oidc_front.sso_enabled = true,
        ..Options::default()
    }
}

/// Signs in at SP A as `who` and returns the ID token's claims.
async fn signed_in(stack: &Stack, browser: &Browser, who: &str) -> serde_json::Value {
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let code = code_of_sign_in(stack, browser, &req, who).await;
    let (status, tokens) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let id_token = tokens["id_token"].as_str().unwrap().to_string();
    let mut claims = verify_id_token(&stack.hub, &id_token, SP_A).await;
    claims["raw"] = id_token.into();
    claims
}

/// Where the chooser sends the browser for `idp`, without going there.
async fn idp_url(stack: &Stack, browser: &Browser, chooser: &str) -> url::Url {
    let csrf = input_value(chooser, "csrf").expect("not the chooser");
    let r = browser
        .http
        .post(format!("{}/chooser", stack.hub))
        .form(&[("csrf", csrf.as_str()), ("idp", "demo-idp")])
        .send()
        .await
        .unwrap();
    r.headers()["location"].to_str().unwrap().parse().unwrap()
}

fn is_chooser(ending: Ending) -> String {
    let (status, page) = ending.page();
    assert_eq!(status, StatusCode::OK);
    assert!(
        input_value(&page, "csrf").is_some(),
        "not the chooser: {page}"
    );
    page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_signs_in_at_an_sp_that_allows_it_without_the_idp() {
    let stack = Stack::start_with(with_sso()).await;
    let browser = Browser::new();
    let first = signed_in(&stack, &browser, "camille").await;

    // Back at SP A: a code at once, for the same person and authentication.
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let back = browser.get(&req.url(&stack.hub)).await.at_sp();
    assert_eq!(query(&back, "state").as_deref(), Some(req.state.as_str()));
    assert_eq!(query(&back, "iss").as_deref(), Some(stack.hub.as_str()));
    let code = req.code(&back);
    let (status, tokens) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let again = verify_id_token(&stack.hub, tokens["id_token"].as_str().unwrap(), SP_A).await;
    assert_eq!(again["sub"], first["sub"]);
    assert_eq!(again["auth_time"], first["auth_time"]);
    assert_eq!(again["nonce"], req.nonce.as_str());
    assert_eq!(again["acr"], "eidas1");
    let (status, info) = userinfo(&stack.hub, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["email"], "camille.martin@demo-idp.test");

    // prompt=none is answered from the session too.
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid").with("prompt", "none");
    let back = browser.get(&req.url(&stack.hub)).await.at_sp();
    assert!(query(&back, "code").is_some(), "{back}");

    // The proof: two more sign-ins, each its own connection, marked as single sign-on.
    let mut records = Vec::new();
    for _ in 0..100 {
        records = stack.proof_events("connection.code_issued").await;
        if records.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(records.len(), 3, "{records:?}");
    assert!(records[0].get("sso").is_none());
    for r in &records[1..] {
        assert_eq!(r["sso"], true, "{r}");
        assert_eq!(r["session_id"], records[0]["session_id"]);
        assert_ne!(r["connection_id"], records[0]["connection_id"]);
        assert_eq!(r["timeline"][0]["step"], "authorize_initiated");
    }

    // Service B does not allow single sign-on: the chooser, and prompt=none is refused.
    let req = AuthRequest::new(SP_B, REDIRECT_B, "openid email");
    is_chooser(browser.get(&req.url(&stack.hub)).await);
    let req = AuthRequest::new(SP_B, REDIRECT_B, "openid").with("prompt", "none");
    let back = browser.get(&req.url(&stack.hub)).await.at_sp();
    assert_eq!(
        query(&back, "error").as_deref(),
        Some("interaction_required")
    );
    assert_eq!(query(&back, "state").as_deref(), Some(req.state.as_str()));
    assert_eq!(query(&back, "iss").as_deref(), Some(stack.hub.as_str()));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_serves_only_the_levels_asked_that_the_sp_allows_it_for() {
    let stack = Stack::start_with(with_sso()).await;
    let browser = Browser::new();
    // Jean's session is eidas2; Service A allows single sign-on for eidas1 requests.
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email").with("acr_values", "eidas2");
    let code = code_of_sign_in(&stack, &browser, &req, "jean").await;
    let (status, _) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK);
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let back = browser.get(&req.url(&stack.hub)).await.at_sp();
    let code = req.code(&back);
    let (_, tokens) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    let claims = verify_id_token(&stack.hub, tokens["id_token"].as_str().unwrap(), SP_A).await;
    // The level obtained, above the one asked.
    assert_eq!(claims["acr"], "eidas2");
    // An eidas2 request is not one single sign-on may serve here: the chooser.
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email").with("acr_values", "eidas2");
    is_chooser(browser.get(&req.url(&stack.hub)).await);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_none_without_a_usable_session_says_login_required() {
    let stack = Stack::start_with(with_sso()).await;
    let none = |extra: &[(&'static str, &str)]| {
        let mut req = AuthRequest::new(SP_A, REDIRECT_A, "openid").with("prompt", "none");
        for (k, v) in extra {
            req = req.with(k, v);
        }
        req
    };
    let login_required = |back: url::Url, state: &str| {
        assert_eq!(
            query(&back, "error").as_deref(),
            Some("login_required"),
            "{back}"
        );
        assert_eq!(query(&back, "state").as_deref(), Some(state));
        assert!(query(&back, "code").is_none());
    };
    // No session at all.
    let stranger = Browser::new();
    let req = none(&[]);
    login_required(stranger.get(&req.url(&stack.hub)).await.at_sp(), &req.state);

    let browser = Browser::new();
    let camille = signed_in(&stack, &browser, "camille").await;
    let other = Browser::new();
    let jean = signed_in(&stack, &other, "jean").await;
    // A higher acr than the session's.
    let req = none(&[("acr_values", "eidas2")]);
    login_required(browser.get(&req.url(&stack.hub)).await.at_sp(), &req.state);
    // A hint naming another person.
    let req = none(&[("id_token_hint", jean["raw"].as_str().unwrap())]);
    login_required(browser.get(&req.url(&stack.hub)).await.at_sp(), &req.state);
    // prompt=login.
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid").with("prompt", "none login");
    let back = browser.get(&req.url(&stack.hub)).await.at_sp();
    assert_eq!(query(&back, "error").as_deref(), Some("invalid_request"));
    // Older than max_age.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let req = none(&[("max_age", "0")]);
    login_required(browser.get(&req.url(&stack.hub)).await.at_sp(), &req.state);
    // The session's own person is answered.
    let req = none(&[("id_token_hint", camille["raw"].as_str().unwrap())]);
    let back = browser.get(&req.url(&stack.hub)).await.at_sp();
    assert!(query(&back, "code").is_some(), "{back}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_login_and_max_age_send_the_user_back_to_the_idp_and_say_so() {
    let stack = Stack::start_with(with_sso()).await;
    let browser = Browser::new();
    let first = signed_in(&stack, &browser, "camille").await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email").with("prompt", "login");
    let chooser = is_chooser(browser.get(&req.url(&stack.hub)).await);
    let to_idp = idp_url(&stack, &browser, &chooser).await;
    assert_eq!(query(&to_idp, "prompt").as_deref(), Some("login"));

    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email").with("max_age", "0");
    let chooser = is_chooser(browser.get(&req.url(&stack.hub)).await);
    let to_idp = idp_url(&stack, &browser, &chooser).await;
    assert_eq!(query(&to_idp, "max_age").as_deref(), Some("0"));

    // Through the IdP again: a later authentication.
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email").with("prompt", "login");
    let code = code_of_sign_in(&stack, &browser, &req, "camille").await;
    let (_, tokens) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    let later = verify_id_token(&stack.hub, tokens["id_token"].as_str().unwrap(), SP_A).await;
    assert!(later["auth_time"].as_i64() > first["auth_time"].as_i64());
    assert_eq!(later["sub"], first["sub"]);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_is_off_unless_the_deployment_turns_it_on() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    signed_in(&stack, &browser, "camille").await;
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    is_chooser(browser.get(&req.url(&stack.hub)).await);
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid").with("prompt", "none");
    let back = browser.get(&req.url(&stack.hub)).await.at_sp();
    assert_eq!(
        query(&back, "error").as_deref(),
        Some("interaction_required")
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_level_above_the_session_sends_the_user_back_to_the_idp_to_authenticate_again() {
    // The demo IdP keeps its sessions and answers from them whatever acr is asked, unless
    // told prompt=login: the IdP a hub's step-up must cope with.
    let stack = Stack::start_with(Options {
        idp_sessions: true,
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    let first = signed_in(&stack, &browser, "camille").await;
    assert_eq!(first["acr"], "eidas1");

    // The same level again: the IdP answers from its session, no login page.
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let chooser = is_chooser(browser.get(&req.url(&stack.hub)).await);
    let to_idp = idp_url(&stack, &browser, &chooser).await;
    assert_eq!(query(&to_idp, "prompt"), None);
    let back = browser.get(to_idp.as_str()).await.at_sp();
    assert!(query(&back, "code").is_some(), "{back}");

    // A higher level than the session's: the IdP is asked to authenticate again, and
    // for the level as an essential claim.
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email").with("acr_values", "eidas2");
    let chooser = is_chooser(browser.get(&req.url(&stack.hub)).await);
    let to_idp = idp_url(&stack, &browser, &chooser).await;
    assert_eq!(query(&to_idp, "prompt").as_deref(), Some("login"));
    let claims: serde_json::Value =
        serde_json::from_str(&query(&to_idp, "claims").expect("no claims parameter")).unwrap();
    assert_eq!(claims["id_token"]["acr"]["essential"], true);
    assert_eq!(claims["id_token"]["acr"]["values"][0], "eidas2");
    let (status, login) = browser.get(to_idp.as_str()).await.page();
    assert_eq!(status, StatusCode::OK);
    assert!(
        input_value(&login, "request_id").is_some(),
        "no login page: {login}"
    );
    let back = browser
        .login(stack.idp.issuer(), &login, "jean", "none")
        .await
        .at_sp();
    let code = req.code(&back);
    let (_, tokens) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    let stepped = verify_id_token(&stack.hub, tokens["id_token"].as_str().unwrap(), SP_A).await;
    assert_eq!(stepped["acr"], "eidas2");
    stack.stop().await;
}
