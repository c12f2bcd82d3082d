//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a session ends, each
//! SP it signed the user in at hears of it with a logout token, retried when the SP is
//! down, delivered after a broker outage, and recorded in the proof.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::*;

fn with_sso() -> Options {
    Options {
        tweak: |c| c.oidc_front.sso_enabled = true,
        ..Options::default()
    }
}

/// Signs in at `client` and returns its ID token's claims, the raw token under `raw`.
async fn id_token_at(
    stack: &Stack,
    browser: &Browser,
    client: &'static str,
    secret: &str,
    redirect: &'static str,
    basic: bool,
) -> Value {
    let req = AuthRequest::new(client, redirect, "openid email");
    let code = code_of_sign_in(stack, browser, &req, "jean").await;
    let (status, tokens) = token(&stack.hub, client, secret, &code, redirect, basic).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let raw = tokens["id_token"].as_str().unwrap().to_string();
    let mut claims = verify_id_token(&stack.hub, &raw, client).await;
    claims["raw"] = raw.into();
    claims
}

async fn log_out(stack: &Stack, browser: &Browser, hint: &Value) -> url::Url {
    let mut u = url::Url::parse(&format!("{}/end_session", stack.hub)).unwrap();
    u.query_pairs_mut()
        .append_pair("id_token_hint", hint["raw"].as_str().unwrap())
        .append_pair("post_logout_redirect_uri", LOGOUT_A);
    browser.get(u.as_str()).await.at_sp()
}

/// A logout token as an SP must check it (§2.6), with `jsonwebtoken`, not the hub's code.
async fn check_logout_token(stack: &Stack, token: &str, audience: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let claims = verify_hub_jwt(&stack.hub, token, audience, true).await;
    assert!(claims["jti"].is_string(), "{claims}");
    assert!(claims["iat"].is_i64(), "{claims}");
    assert_eq!(
        claims["events"]["http://schemas.openid.net/event/backchannel-logout"],
        serde_json::json!({})
    );
    // A logout token must never pass for an ID token.
    assert!(claims.get("nonce").is_none(), "{claims}");
    claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_tells_each_sp_of_that_session_and_no_other() {
    let stack = Stack::start_with(with_sso()).await;
    let browser = Browser::new();
    // SP B through the IdP, then SP A from the same session by single sign-on.
    let at_b = id_token_at(&stack, &browser, SP_B, SECRET_B, REDIRECT_B, false).await;
    let at_a = {
        let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
        let back = browser.get(&req.url(&stack.hub)).await.at_sp();
        let code = req.code(&back);
        let (status, tokens) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        let raw = tokens["id_token"].as_str().unwrap().to_string();
        let mut c = verify_id_token(&stack.hub, &raw, SP_A).await;
        c["raw"] = raw.into();
        c
    };
    assert_eq!(at_a["sid"], at_b["sid"], "one hub session");
    // A session of another browser at SP A: not to be logged out.
    let other = Browser::new();
    let other_a = id_token_at(&stack, &other, SP_A, SECRET_A, REDIRECT_A, true).await;

    let back = log_out(&stack, &browser, &at_a).await;
    assert!(back.as_str().starts_with(LOGOUT_A), "{back}");
    let mut got = stack.logouts.wait_for(2).await;
    got.sort();
    assert_eq!(got[0].0, "a");
    assert_eq!(got[1].0, "b");
    let a = check_logout_token(&stack, &got[0].1, SP_A).await;
    let b = check_logout_token(&stack, &got[1].1, SP_B).await;
    assert_eq!(a["sid"], at_a["sid"]);
    assert_eq!(a["sub"], at_a["sub"]);
    assert_eq!(b["sid"], at_b["sid"]);
    assert_eq!(b["sub"], at_b["sub"], "each SP gets the subject it knows");
    assert_ne!(a["jti"], b["jti"]);
    // Each signed with the SP's own algorithm.
    assert_eq!(
        jsonwebtoken::decode_header(&got[1].1).unwrap().alg,
        jsonwebtoken::Algorithm::RS256
    );
    // The proof says which SP was told.
    let mut notified = Vec::new();
    for _ in 0..100 {
        notified = stack.proof_events("connection.logout_notified").await;
        if notified.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(notified.len(), 2, "{notified:?}");
    assert!(notified.iter().all(|e| e["outcome"] == "success"));
    // Nothing for the other browser's session, even later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stack.logouts.received().len(), 2);
    assert!(
        stack
            .logouts
            .received()
            .iter()
            .all(|(_, t)| !t.contains(other_a["sid"].as_str().unwrap()))
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sp_that_is_down_is_tried_again_then_recorded_as_not_told() {
    let stack = Stack::start().await;
    // Down for the first attempt only: told at the next.
    stack.logouts.fail_next(1);
    let browser = Browser::new();
    let at_a = id_token_at(&stack, &browser, SP_A, SECRET_A, REDIRECT_A, true).await;
    let started = std::time::Instant::now();
    log_out(&stack, &browser, &at_a).await;
    let got = stack.logouts.wait_for(1).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "retried at once"
    );
    assert_eq!(stack.logouts.requests(), 2);
    check_logout_token(&stack, &got[0].1, SP_A).await;

    // Down for good: the first attempt and the two of the schedule, then given up.
    stack.logouts.fail_next(usize::MAX);
    let browser = Browser::new();
    let at_a = id_token_at(&stack, &browser, SP_A, SECRET_A, REDIRECT_A, true).await;
    log_out(&stack, &browser, &at_a).await;
    let mut failed = Vec::new();
    for _ in 0..200 {
        failed = stack
            .proof_events("connection.logout_notified")
            .await
            .into_iter()
            .filter(|e| e["outcome"] == "failure")
            .collect();
        if !failed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["error_code"], "backchannel_logout_failed");
    assert_eq!(failed[0]["sp_id"], SP_A);
    assert_eq!(stack.logouts.requests(), 2 + 3);
    assert_eq!(stack.logouts.received().len(), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_during_a_broker_outage_reaches_the_sp_once_the_broker_is_back() {
    let stack = Stack::start_with(Options {
        proxied_bus: true,
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    let at_a = id_token_at(&stack, &browser, SP_A, SECRET_A, REDIRECT_A, true).await;
    let proxy = stack.proxy.as_ref().unwrap();
    proxy.cut();
    // The user is signed out at once, broker or not.
    let back = log_out(&stack, &browser, &at_a).await;
    assert!(back.as_str().starts_with(LOGOUT_A), "{back}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(stack.logouts.received().is_empty());
    proxy.restore();
    let got = stack.logouts.wait_for(1).await;
    let claims = check_logout_token(&stack, &got[0].1, SP_A).await;
    assert_eq!(claims["sid"], at_a["sid"]);
    // Once, not once per reconnection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stack.logouts.received().len(), 1);
    stack.stop().await;
}

/// `/end_session` ends only the session of the browser that holds it: an SP back end
/// with a user's ID token can neither log them out everywhere nor be handed the IdP's
/// own ID token (which names the user identically at every SP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hint_without_the_browsers_cookie_ends_no_session() {
    let stack = Stack::start_with(with_sso()).await;
    let browser = Browser::new();
    let at_a = id_token_at(&stack, &browser, SP_A, SECRET_A, REDIRECT_A, true).await;
    // The SP's server, not the user's browser.
    let back = log_out(&stack, &Browser::new(), &at_a).await;
    assert!(back.as_str().starts_with(LOGOUT_A), "{back}");
    assert!(
        !back.as_str().contains(stack.idp.issuer()),
        "sent toward the IdP: {back}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(stack.logouts.received().is_empty(), "an SP was told");
    // The user's session lives on: single sign-on still answers prompt=none.
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid").with("prompt", "none");
    let back = browser.get(&req.url(&stack.hub)).await.at_sp();
    assert!(query(&back, "code").is_some(), "{back}");
    stack.stop().await;
}

/// Posts the logout confirmation page's form from `browser`.
async fn confirm(stack: &Stack, browser: &Browser, token: &str, answer: &str) -> Ending {
    let r = browser
        .http
        .post(format!("{}/end_session/confirm", stack.hub))
        .form(&[("token", token), ("answer", answer)])
        .send()
        .await
        .unwrap();
    browser.follow(r).await
}

/// Logout CSRF (RP-Initiated Logout 1.0 §2): a cross-site `/end_session` without a hint
/// of this browser's session ends nothing and asks; the page's token, posted from this
/// browser, ends the session as the SP's own logout would (back-channel notice included);
/// the same token from another browser, or a forged one, ends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_without_this_sessions_hint_is_confirmed_first() {
    let stack = Stack::start_with(with_sso()).await;
    let browser = Browser::new();
    let at_a = id_token_at(&stack, &browser, SP_A, SECRET_A, REDIRECT_A, true).await;
    let other = Browser::new();
    let at_other = id_token_at(&stack, &other, SP_A, SECRET_A, REDIRECT_A, true).await;
    assert_ne!(at_a["sid"], at_other["sid"]);

    // A link on another site: no hint.
    let mut u = url::Url::parse(&format!("{}/end_session", stack.hub)).unwrap();
    u.query_pairs_mut()
        .append_pair("client_id", SP_A)
        .append_pair("post_logout_redirect_uri", LOGOUT_A)
        .append_pair("state", "st-x");
    let (status, page) = browser.get(u.as_str()).await.page();
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(r#"<form method="post" action="/end_session/confirm">"#),
        "{page}"
    );
    assert!(!page.contains("<script"), "{page}");
    let token = input_value(&page, "token").expect("no token on the page");
    // Another session's hint asks too.
    let mut u = url::Url::parse(&format!("{}/end_session", stack.hub)).unwrap();
    u.query_pairs_mut()
        .append_pair("id_token_hint", at_other["raw"].as_str().unwrap());
    let (status, page) = browser.get(u.as_str()).await.page();
    assert_eq!(status, StatusCode::OK);
    assert!(input_value(&page, "token").is_some(), "{page}");

    // The token replayed from another browser, or forged: refused, nothing ended.
    for (from, token) in [(&other, token.as_str()), (&browser, "forged")] {
        let (status, page) = confirm(&stack, from, token, "sign_out").await.page();
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(page.contains("logout_confirmation_invalid"), "{page}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(stack.logouts.received().is_empty(), "an SP was told");
    for b in [&browser, &other] {
        let req = AuthRequest::new(SP_A, REDIRECT_A, "openid").with("prompt", "none");
        let back = b.get(&req.url(&stack.hub)).await.at_sp();
        assert!(query(&back, "code").is_some(), "a session ended: {back}");
    }

    // Confirmed in this browser: through the IdP, back to the SP with its state.
    let back = confirm(&stack, &browser, &token, "sign_out").await.at_sp();
    assert!(back.as_str().starts_with(LOGOUT_A), "{back}");
    assert_eq!(query(&back, "state").as_deref(), Some("st-x"));
    let got = stack.logouts.wait_for(1).await;
    let claims = check_logout_token(&stack, &got[0].1, SP_A).await;
    assert_eq!(claims["sid"], at_a["sid"]);
    // The other browser's session lives on.
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid").with("prompt", "none");
    let back = other.get(&req.url(&stack.hub)).await.at_sp();
    assert!(query(&back, "code").is_some(), "{back}");
    stack.stop().await;
}
