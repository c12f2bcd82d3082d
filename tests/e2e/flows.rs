//! The sign-in's in-flight state lives in a sealed cookie: each attack on that cookie or on
//! the IdP round trip is tried and refused, and a code raced against itself issues one
//! token, revoked.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use relais_oidc_front::domain::flow::{Flow, PURPOSE};
use reqwest::StatusCode;
use reqwest::cookie::CookieStore;

use crate::harness::*;

/// A browser whose cookies the test can read and plant.
fn browser_with_jar() -> (Browser, Arc<reqwest::cookie::Jar>) {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let http = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (Browser { http }, jar)
}

fn flow_cookie(jar: &reqwest::cookie::Jar, hub: &str) -> String {
    let header = jar.cookies(&hub.parse().unwrap()).expect("no cookie");
    header
        .to_str()
        .unwrap()
        .split("; ")
        .find_map(|c| c.strip_prefix("relais_flow="))
        .expect("no flow cookie")
        .to_string()
}

/// From an authorization request to the IdP's callback URL (state and code), without
/// following it.
async fn callback_url(stack: &Stack, browser: &Browser, req: &AuthRequest) -> String {
    let (_, chooser) = browser.get(&req.url(&stack.hub)).await.page();
    let (_, login) = browser
        .choose(&stack.hub, &chooser, "demo-idp")
        .await
        .page();
    let r = browser
        .submit_login(stack.idp.issuer(), &login, "camille", "none", "login")
        .await;
    r.headers()["location"].to_str().unwrap().to_string()
}

/// A request with exactly this flow cookie and nothing else.
async fn with_flow_cookie(url: &str, cookie: &str) -> Ending {
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(url)
        .header("cookie", format!("relais_flow={cookie}"))
        .send()
        .await
        .unwrap();
    Browser::new().follow(r).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_flow_replayed_with_its_cookie_issues_no_second_code() {
    let stack = Stack::start().await;
    let (browser, jar) = browser_with_jar();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let callback = callback_url(&stack, &browser, &req).await;
    let stolen = flow_cookie(&jar, &stack.hub);
    let back = browser.get(&callback).await.at_sp();
    let code = req.code(&back);
    // The same callback with the cookie it came with, from anywhere: refused.
    let (status, page) = with_flow_cookie(&callback, &stolen).await.page();
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{status}: {page}"
    );
    let (status, _) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK);
    // One code was issued for the connection, whatever the replay did.
    for _ in 0..100 {
        if stack.proof_events("connection.failed").await.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The failure was recorded after the code: every code issued is in the store now.
    let issued = stack.proof_events("connection.code_issued").await;
    assert_eq!(issued.len(), 1, "{issued:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_foreign_or_expired_flow_cookie_is_refused() {
    let stack = Stack::start_with(Options {
        tweak: |c| c.oidc_front.flow_ttl_seconds = 2,
        ..Options::default()
    })
    .await;
    let (browser, jar) = browser_with_jar();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let (_, chooser) = browser.get(&req.url(&stack.hub)).await.page();
    let csrf = input_value(&chooser, "csrf").unwrap();
    let cookie = flow_cookie(&jar, &stack.hub);
    let choose = |cookie: String| {
        let hub = stack.hub.clone();
        let csrf = csrf.clone();
        async move {
            let r = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
                .post(format!("{hub}/chooser"))
                .header("cookie", format!("relais_flow={cookie}"))
                .form(&[("csrf", csrf.as_str()), ("idp", "demo-idp")])
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    // What the test seals with the hub's own key for the flow's purpose opens, so the
    // refusals below are the cookie's, not the test's.
    let key = relais::RelaisConfig::default().oidc_front.flow_keys[0]
        .expose()
        .to_string();
    let own = relais_jose::Sealer::new(&[key.as_str()]).unwrap();
    let exp = time_now() + 60;
    let mut flow = Flow::decode(own.open(PURPOSE, &cookie, time_now()).unwrap().as_slice())
        .expect("the cookie holds a flow");
    flow.expires_at = exp;
    let resealed = own.seal(PURPOSE, &flow.encode_to_vec(), exp).unwrap();
    assert_eq!(choose(resealed).await.0, StatusCode::SEE_OTHER);

    // One character changed.
    let mut forged = cookie.clone().into_bytes();
    let i = forged.len() / 2;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    // The same flow sealed for another purpose (the bridge's round trips), or by a key
    // this hub does not hold.
    let swapped = own
        .seal("idp_round_trip", &flow.encode_to_vec(), exp)
        .unwrap();
    let other = relais_jose::Sealer::new(&["another-deployment-flow-key-0123456789"]).unwrap();
    let foreign = other.seal(PURPOSE, &flow.encode_to_vec(), exp).unwrap();
    for bad in [forged, swapped, foreign, String::new()] {
        let (status, page) = choose(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
        assert!(page.contains("flow_expired"), "{page}");
    }
    // The genuine cookie, once its two seconds are over.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let (status, page) = choose(cookie).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("flow_expired"), "{page}");
    stack.stop().await;
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_carrying_another_browsers_state_is_refused() {
    let stack = Stack::start().await;
    let victim = Browser::new();
    let attacker = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    // The attacker signs in at the IdP and has the victim's browser deliver the answer
    // (login CSRF); the victim's own flow is waiting at the IdP.
    let _ = callback_url(&stack, &victim, &req).await;
    let attackers = callback_url(&stack, &attacker, &req).await;
    let (_, page) = victim.get(&attackers).await.page();
    assert!(page.contains("idp_state_mismatch"), "{page}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_redemptions_of_one_code_racing_issue_one_token_and_revoke_it() {
    // Each replay counts toward blocking the client; not what this test is about.
    let stack = Stack::start_with(Options {
        tweak: |c| c.oidc_front.brute_force_max_failures = 1_000,
        ..Options::default()
    })
    .await;
    for round in 0..20 {
        let browser = Browser::new();
        let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
        let code = code_of_sign_in(&stack, &browser, &req, "camille").await;
        let (a, b) = tokio::join!(
            token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true),
            token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true),
        );
        let (won, lost) = match (a.0, b.0) {
            (StatusCode::OK, StatusCode::BAD_REQUEST) => (a.1, b.1),
            (StatusCode::BAD_REQUEST, StatusCode::OK) => (b.1, a.1),
            other => panic!("round {round}: not one success and one refusal: {other:?}"),
        };
        assert_eq!(lost["error_code"], "code_reused", "round {round}");
        let access = won["access_token"].as_str().unwrap();
        let (status, body) = userinfo(&stack.hub, access).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "round {round}: {body}");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anothers_code_is_refused_without_spoiling_it() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let code = code_of_sign_in(&stack, &browser, &req, "camille").await;
    for _ in 0..2 {
        let (status, body) = token(&stack.hub, SP_B, SECRET_B, &code, REDIRECT_A, false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error_code"], "code_client_mismatch");
    }
    let (status, tokens) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, _) = userinfo(&stack.hub, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_clients_and_unregistered_redirects_leave_no_proof() {
    let stack = Stack::start_with(Options {
        tweak: |c| c.telemetry.metrics_listen = "127.0.0.1:0".into(),
        ..Options::default()
    })
    .await;
    let refused = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("relais_authorize_refused_total "))
            .and_then(|n| n.trim().parse::<u64>().ok())
    };
    let before = refused(&stack.metrics().await).expect("the counter is exposed");
    let browser = Browser::new();
    for req in [
        AuthRequest::new("nobody", REDIRECT_A, "openid"),
        AuthRequest::new(SP_A, "http://127.0.0.1:9/elsewhere", "openid"),
        AuthRequest::new(SP_A, REDIRECT_B, "openid"),
    ] {
        let (status, _) = browser.get(&req.url(&stack.hub)).await.page();
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    // Nothing durable, but counted for the operators.
    assert_eq!(refused(&stack.metrics().await), Some(before + 3));
    // A refusal of a known client at its own redirect URI is recorded: once it is in the
    // proof store, anything written before it is too.
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid unknown_scope");
    let back = browser.get(&req.url(&stack.hub)).await.at_sp();
    assert_eq!(query(&back, "error").as_deref(), Some("invalid_scope"));
    let mut failed = Vec::new();
    for _ in 0..100 {
        failed = stack.proof_events("connection.failed").await;
        if !failed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["sp_id"], SP_A);
    assert_eq!(failed[0]["error_code"], "unknown_scope");
    assert_eq!(failed[0]["timeline"][0]["step"], "authorize_initiated");
    // The sign-in is one record: no step of it stands alone.
    assert!(
        stack
            .proof_events("connection.authorize_initiated")
            .await
            .is_empty()
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shorter_states_pass_only_where_the_registry_allows_them() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    let short = "s".repeat(27);
    // Service A keeps the terms' 256 bits.
    let mut req = AuthRequest::new(SP_A, REDIRECT_A, "openid");
    req.state = short.clone();
    let back = browser.get(&req.url(&stack.hub)).await.at_sp();
    assert!(
        query(&back, "error_description")
            .unwrap()
            .contains("state_too_short")
    );
    let mut req = AuthRequest::new(SP_A, REDIRECT_A, "openid");
    req.nonce = short.clone();
    let back = browser.get(&req.url(&stack.hub)).await.at_sp();
    assert!(
        query(&back, "error_description")
            .unwrap()
            .contains("nonce_too_short")
    );
    // Service B is registered with 27: its chooser, and not one character less.
    let mut req = AuthRequest::new(SP_B, REDIRECT_B, "openid email");
    req.state = short.clone();
    req.nonce = short.clone();
    let (status, chooser) = browser.get(&req.url(&stack.hub)).await.page();
    assert_eq!(status, StatusCode::OK);
    assert!(input_value(&chooser, "csrf").is_some(), "{chooser}");
    req.state = "s".repeat(26);
    let back = browser.get(&req.url(&stack.hub)).await.at_sp();
    assert!(
        query(&back, "error_description")
            .unwrap()
            .contains("state_too_short")
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_one_sign_in_alternately() {
    let stack = Stack::start().await;
    let other = stack.replica().await;
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    // The flow sealed by this front, the IdP round trip started by the other replica's
    // front and bridge, the IdP's answer taken by this front and bridge.
    let (_, chooser) = browser.get(&req.url(&stack.hub)).await.page();
    let (status, login) = browser
        .choose(&other.hub, &chooser, "demo-idp")
        .await
        .page();
    assert_eq!(status, StatusCode::OK, "{login}");
    let back = browser
        .login(stack.idp.issuer(), &login, "camille", "none")
        .await
        .at_sp();
    let code = req.code(&back);
    // The code redeemed at the other replica, its token used at this one.
    let (status, tokens) = token(&other.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let (status, info) = userinfo(&stack.hub, access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["email"], "camille.martin@demo-idp.test");
    // And the other way round: a flow of the other replica finished here.
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let (_, chooser) = browser.get(&req.url(&other.hub)).await.page();
    let (_, login) = browser
        .choose(&stack.hub, &chooser, "demo-idp")
        .await
        .page();
    let back = browser
        .login(stack.idp.issuer(), &login, "camille", "none")
        .await
        .at_sp();
    assert!(query(&back, "code").is_some());
    drop(other);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_hears_of_a_suspension_at_once() {
    let stack = Stack::start().await;
    let other = stack.replica().await;
    let browser = Browser::new();
    let requests = [
        AuthRequest::new(SP_A, REDIRECT_A, "openid email"),
        AuthRequest::new(SP_B, REDIRECT_B, "openid email"),
    ];
    // Both SPs cached by both fronts.
    for hub in [&stack.hub, &other.hub] {
        for req in &requests {
            let (status, _) = browser.get(&req.url(hub)).await.page();
            assert_eq!(status, StatusCode::OK);
        }
    }
    // Two changes: on one shared queue each front would hear only one of them.
    for sp in [SP_A, SP_B] {
        let (ok, out) = stack.admin(&["suspend-sp", sp, "e2e"]).await;
        assert!(ok, "{out}");
    }
    // Well within the 30 s the cache would otherwise keep them.
    for hub in [&stack.hub, &other.hub] {
        for req in &requests {
            let mut page = String::new();
            for _ in 0..50 {
                let (_, p) = browser.get(&req.url(hub)).await.page();
                page = p;
                if page.contains("client_suspended") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(page.contains("client_suspended"), "{hub}: {page}");
        }
    }
    drop(other);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_sending_many_unknown_clients_is_slowed_and_the_others_are_not() {
    let stack = Stack::start_with(Options {
        tweak: |c| c.oidc_front.authorize_refusals_per_minute = 3,
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    let unknown = AuthRequest::new("nobody", REDIRECT_A, "openid");
    for _ in 0..3 {
        let (status, page) = browser.get(&unknown.url(&stack.hub)).await.page();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("unknown_client"), "{page}");
    }
    let (status, page) = browser.get(&unknown.url(&stack.hub)).await.page();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{page}");
    assert!(page.contains("too_many_refusals"), "{page}");
    // A registered client from the same address is served as ever.
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let (status, chooser) = browser.get(&req.url(&stack.hub)).await.page();
    assert_eq!(status, StatusCode::OK);
    assert!(input_value(&chooser, "csrf").is_some(), "{chooser}");
    stack.stop().await;
}

/// A known client and redirect URI do not open the proof store to anyone: refused
/// requests from one address are recorded within its budget, then only answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_of_a_known_client_are_recorded_only_within_the_address_budget() {
    let stack = Stack::start_with(Options {
        tweak: |c| c.oidc_front.authorize_refusals_per_minute = 3,
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    let bad = AuthRequest::new(SP_A, REDIRECT_A, "openid").with("response_type", "token");
    for _ in 0..3 {
        let back = browser.get(&bad.url(&stack.hub)).await.at_sp();
        assert!(query(&back, "error").is_some(), "{back}");
    }
    for _ in 0..3 {
        let (status, page) = browser.get(&bad.url(&stack.hub)).await.page();
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{page}");
        assert!(page.contains("too_many_refusals"), "{page}");
    }
    let mut failed = Vec::new();
    for _ in 0..50 {
        failed = stack.proof_events("connection.failed").await;
        if failed.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stack.proof_events("connection.failed").await.len(),
        3,
        "{failed:?}"
    );
    // prompt=none's answers are not refusals: still answered and recorded.
    let silent = AuthRequest::new(SP_A, REDIRECT_A, "openid").with("prompt", "none");
    let back = browser.get(&silent.url(&stack.hub)).await.at_sp();
    assert_eq!(query(&back, "error").as_deref(), Some("login_required"));
    stack.stop().await;
}
