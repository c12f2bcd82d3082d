//! Attacks tried against the running hub, each refused with the right answer.

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::*;

async fn back_channel(
    hub: &str,
    path: &str,
    client: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    // SP B is registered for client_secret_post, SP A for client_secret_basic.
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    let mut req = reqwest::Client::new().post(format!("{hub}{path}"));
    if client == SP_B {
        fields.push(("client_id", client));
        fields.push(("client_secret", secret));
    } else {
        req = req.basic_auth(client, Some(secret));
    }
    let r = req.form(&fields).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let status = r.status();
    (status, r.json().await.unwrap())
}

/// A signed-in SP A: its tokens.
async fn tokens_for_a(stack: &Stack) -> Value {
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let code = req.code(&sign_in(stack, &browser, &req, "camille").await.at_sp());
    let (status, t) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_introspection() {
    let stack = Stack::start().await;
    let hub = stack.hub.clone();
    let t = tokens_for_a(&stack).await;
    let access = t["access_token"].as_str().unwrap();

    let (status, info) =
        back_channel(&hub, "/introspect", SP_A, SECRET_A, &[("token", access)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["client_id"], SP_A);
    assert_eq!(info["scope"], "openid email");
    assert_eq!(info["iss"], hub.as_str());

    // Another client learns nothing about it, and cannot revoke it.
    let (_, other) = back_channel(&hub, "/introspect", SP_B, SECRET_B, &[("token", access)]).await;
    assert_eq!(other, serde_json::json!({ "active": false }));
    let (status, _) = back_channel(&hub, "/revoke", SP_B, SECRET_B, &[("token", access)]).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "RFC 7009: no oracle for foreign tokens"
    );
    assert_eq!(userinfo(&hub, access).await.0, StatusCode::OK);

    // A wrong secret is refused before anything else.
    let (status, body) = back_channel(
        &hub,
        "/revoke",
        SP_A,
        "not-the-secret",
        &[("token", access)],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    let (status, body) = back_channel(
        &hub,
        "/revoke",
        SP_A,
        SECRET_A,
        &[("token", access), ("token_type_hint", "bogus")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_token_type");

    // The owner revokes it: it fails everywhere at once.
    let (status, _) = back_channel(&hub, "/revoke", SP_A, SECRET_A, &[("token", access)]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = userinfo(&hub, access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (_, info) = back_channel(&hub, "/introspect", SP_A, SECRET_A, &[("token", access)]).await;
    assert_eq!(info["active"], false);
    // Unknown tokens are a success too.
    let (status, _) = back_channel(
        &hub,
        "/revoke",
        SP_A,
        SECRET_A,
        &[("token", "never-issued")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    stack.stop().await;
}

/// Every variant of a registered redirect URI is refused with a page, never followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_uri_variants_are_refused() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    let variants = [
        "http://127.0.0.1:9/a/callback/",
        "http://127.0.0.1:9/a/callback/../callback",
        "http://127.0.0.1:9/a/callback?next=x",
        "http://127.0.0.1:9/a/callback#x",
        "http://127.0.0.1:9/a/callbackx",
        "http://127.0.0.1:9/a/Callback",
        "http://127.0.0.1:9/a",
        "http://127.0.0.1:99/a/callback",
        "https://127.0.0.1:9/a/callback",
        "http://127.0.0.1:9@evil.example/a/callback",
        "http://evil.example@127.0.0.1:9/a/callback",
        "http://127.0.0.1.evil.example:9/a/callback",
        "http://localhost.evil:9/a/callback",
        "http://sub.127.0.0.1:9/a/callback",
        "http://127.0.0.1:9/a/callback%2F",
        "http://127.0.0.1:9/a/%63allback",
        "http%3A%2F%2F127.0.0.1%3A9%2Fa%2Fcallback",
        "HTTP://127.0.0.1:9/a/callback",
        " http://127.0.0.1:9/a/callback",
    ];
    for bad in variants {
        let mut req = AuthRequest::new(SP_A, REDIRECT_A, "openid");
        req.redirect_uri = Box::leak(bad.to_string().into_boxed_str());
        let (status, page) = browser.get(&req.url(&stack.hub)).await.page();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(page.contains("redirect_uri_mismatch"), "{bad:?}: {page}");
    }
    // Two redirect_uri parameters, the registered one first.
    let req =
        AuthRequest::new(SP_A, REDIRECT_A, "openid").with("redirect_uri", "http://evil.example/");
    let (status, page) = browser.get(&req.url(&stack.hub)).await.page();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("redirect_uri_mismatch"), "{page}");
    // The logout redirect is held to the same rule.
    let t = tokens_for_a(&stack).await;
    for bad in [
        "http://127.0.0.1:9/a/logged-out/",
        "http://evil.example/a/logged-out",
    ] {
        let mut u = url::Url::parse(&format!("{}/end_session", stack.hub)).unwrap();
        u.query_pairs_mut()
            .append_pair("id_token_hint", t["id_token"].as_str().unwrap())
            .append_pair("post_logout_redirect_uri", bad);
        let (status, page) = browser.get(u.as_str()).await.page();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(page.contains("post_logout_redirect_uri_mismatch"), "{page}");
    }
    stack.stop().await;
}

/// OAuth 2.1 (RFC 9700 §2.1.1): every SP sends PKCE unless registered exempt, which only
/// a confidential client may be; discovery says S256.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_is_required_unless_the_sp_is_exempt() {
    let stack = Stack::start().await;
    let hub = stack.hub.clone();
    let discovery: Value = reqwest::get(format!("{hub}/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    // No challenge (a method alone is none): back to the SP with the error, as every
    // refusal once the redirect URI is trusted.
    let browser = Browser::new();
    for req in [
        AuthRequest::new(SP_A, REDIRECT_A, "openid").without_pkce(),
        AuthRequest::new(SP_A, REDIRECT_A, "openid")
            .without_pkce()
            .with("code_challenge_method", "S256"),
    ] {
        let back = browser.get(&req.url(&hub)).await.at_sp();
        assert!(back.as_str().starts_with(REDIRECT_A), "{back}");
        assert_eq!(query(&back, "error").as_deref(), Some("invalid_request"));
        assert!(
            query(&back, "error_description")
                .unwrap()
                .ends_with("[pkce_required]"),
            "{back}"
        );
        assert_eq!(query(&back, "state").as_deref(), Some(req.state.as_str()));
        assert_eq!(query(&back, "iss").as_deref(), Some(hub.as_str()));
        assert_eq!(query(&back, "code"), None);
    }
    // With one: served.
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let code = code_of_sign_in(&stack, &browser, &req, "camille").await;
    let (status, body) = token(&hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The exempt confidential SP signs in without PKCE: its secret binds the code.
    let req = AuthRequest::new(SP_LEGACY, REDIRECT_LEGACY, "openid email").without_pkce();
    let code = code_of_sign_in(&stack, &Browser::new(), &req, "camille").await;
    assert_eq!(code.verifier, None);
    let (status, tokens) =
        token(&hub, SP_LEGACY, SECRET_LEGACY, &code, REDIRECT_LEGACY, true).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify_id_token(&hub, tokens["id_token"].as_str().unwrap(), SP_LEGACY).await;
    assert_eq!(claims["aud"], SP_LEGACY);
    stack.stop().await;
}

/// PKCE: S256 only, the verifier required once a challenge was sent, and never accepted
/// for a code obtained without one (downgrade).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_is_enforced() {
    let stack = Stack::start().await;
    let hub = stack.hub.clone();

    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid")
        .without_pkce()
        .with("code_challenge", &random())
        .with("code_challenge_method", "plain");
    let back = browser.get(&req.url(&hub)).await.at_sp();
    assert!(
        query(&back, "error_description")
            .unwrap()
            .contains("pkce_method_unsupported")
    );

    let code_of_a = || async {
        let req = AuthRequest::new(SP_A, REDIRECT_A, "openid");
        code_of_sign_in(&stack, &Browser::new(), &req, "camille").await
    };
    for (verifier_sent, why) in [
        (None, "verifier omitted"),
        (Some(random()), "wrong verifier"),
        (Some("short".to_string()), "verifier too short"),
    ] {
        let code = Code {
            verifier: verifier_sent,
            ..code_of_a().await
        };
        let (status, body) = token(&hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}");
        assert_eq!(body["error_code"], "pkce_failed", "{why}");
    }
    // Only an exempt SP gets a code without a challenge; a verifier does not fit it.
    let req = AuthRequest::new(SP_LEGACY, REDIRECT_LEGACY, "openid").without_pkce();
    let code = Code {
        verifier: Some(random()),
        ..code_of_sign_in(&stack, &Browser::new(), &req, "camille").await
    };
    let (status, body) = token(&hub, SP_LEGACY, SECRET_LEGACY, &code, REDIRECT_LEGACY, true).await;
    assert_eq!(body["error_code"], "pkce_failed", "downgrade: {body}");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = token(&hub, SP_A, SECRET_A, &code_of_a().await, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    stack.stop().await;
}

/// A hub that blocks for two minutes after three failures, its `/metrics` served.
async fn blocking_after_three_failures() -> Stack {
    Stack::start_with(Options {
        tweak: |c| {
            c.oidc_front.brute_force_max_failures = 3;
            c.oidc_front.brute_force_block_seconds = 120;
            c.telemetry.metrics_listen = "127.0.0.1:0".into();
        },
        ..Options::default()
    })
    .await
}

/// Repeated failed authentications block the client id named from that address and the
/// address (which still serves verified clients), for every replica, with a Retry-After;
/// operators see the blocks, hear of them in the metrics, and can lift them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brute_force_is_blocked() {
    use relais_proto::oidc_front::v1 as front;
    let stack = blocking_after_three_failures().await;
    let hub = stack.hub.clone();
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let code = req.code(&sign_in(&stack, &browser, &req, "camille").await.at_sp());
    for _ in 0..3 {
        let (status, body) = token(&hub, SP_A, "guess-0123456789", &code, REDIRECT_A, true).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    // The client id named from this address is refused now, even with the right secret,
    // with a delay to wait.
    let r = reqwest::Client::new()
        .post(format!("{hub}/token"))
        .basic_auth(SP_A, Some(SECRET_A))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.value.as_str()),
            ("redirect_uri", REDIRECT_A),
            (
                "code_verifier",
                code.verifier.as_deref().unwrap_or_default(),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 120, "{wait}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_code"], "client_blocked");
    // The address is blocked too, but only for what does not verify: another SP behind
    // it (one NAT, one proxy) is served with its own secret, refused with a wrong one.
    let (status, body) = token(&hub, SP_B, SECRET_B, &Code::bare("x"), REDIRECT_B, false).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let (status, _) = token(
        &hub,
        SP_B,
        "guess-0123456789",
        &Code::bare("x"),
        REDIRECT_B,
        false,
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    let blocks = stack
        .front
        .clone()
        .list_blocks(front::Empty {})
        .await
        .unwrap()
        .into_inner()
        .blocks;
    let mut subjects: Vec<&str> = blocks.iter().map(|b| b.subject.as_str()).collect();
    subjects.sort_unstable();
    assert_eq!(subjects, ["client:sp-a@ip:127.0.0.1", "ip:127.0.0.1"]);
    for subject in ["client:sp-a@ip:127.0.0.1", "ip:127.0.0.1"] {
        stack
            .front
            .clone()
            .clear_block(front::ClearBlockRequest {
                subject: subject.into(),
            })
            .await
            .unwrap();
    }
    // The code was never consumed by the refused attempts.
    let (status, body) = token(&hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Operators hear of each block begun.
    let metrics = stack.metrics().await;
    assert!(
        metrics.contains(r#"relais_back_channel_blocks_total{kind="client_address"} 1"#)
            && metrics.contains(r#"relais_back_channel_blocks_total{kind="address"} 1"#),
        "{metrics}"
    );
    stack.stop().await;
}

/// Failures naming a victim SP from elsewhere never refuse the victim, and failures an
/// SP makes with its own credentials block that SP, not its neighbours behind the same
/// address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn others_failures_never_block_a_client_with_its_own_credentials() {
    let stack = blocking_after_three_failures().await;
    let hub = stack.hub.clone();
    let attacker: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let code = req.code(&sign_in(&stack, &browser, &req, "camille").await.at_sp());
    // Many bad secrets naming SP A, from another machine.
    for _ in 0..6 {
        let (status, _) = token_from(
            Some(attacker),
            &hub,
            SP_A,
            "guess-0123456789",
            &code,
            REDIRECT_A,
            true,
        )
        .await;
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS,
            "{status}"
        );
    }
    // SP A from its own address is served, and its code was not spent.
    let (status, body) = token(&hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // SP B guesses codes with its own secret: SP B is blocked, from everywhere...
    for _ in 0..3 {
        let (status, _) = token(&hub, SP_B, SECRET_B, &Code::bare("x"), REDIRECT_B, false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    for from in [None, Some(attacker)] {
        let (status, body) = token_from(
            from,
            &hub,
            SP_B,
            SECRET_B,
            &Code::bare("x"),
            REDIRECT_B,
            false,
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    }
    // ...and SP A, behind the same address, is not.
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let code = req.code(
        &sign_in(&stack, &Browser::new(), &req, "camille")
            .await
            .at_sp(),
    );
    let (status, body) = token(&hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    stack.stop().await;
}

/// A suspended SP's access tokens stop working at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspension_cuts_existing_tokens() {
    use relais_proto::registry::v1 as reg;
    let stack = Stack::start().await;
    let t = tokens_for_a(&stack).await;
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&stack.hub, access).await.0, StatusCode::OK);
    stack
        .registry
        .clone()
        .set_service_provider_status(reg::SetStatusRequest {
            id: SP_A.into(),
            status: reg::PartnerStatus::Suspended as i32,
            reason: "critical threat".into(),
        })
        .await
        .unwrap();
    // The suspension reaches the front through the bus; wait for it, bounded.
    let mut status = StatusCode::OK;
    for _ in 0..100 {
        status = userinfo(&stack.hub, access).await.0;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    stack.stop().await;
}

/// An IdP that rotates its signing key is followed (its keys fetched again for the new
/// kid); a token signed by an unpublished key under a known kid is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_key_rotation_is_followed() {
    let stack = Stack::start().await;
    let sign = || async {
        let browser = Browser::new();
        let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
        sign_in(&stack, &browser, &req, "camille").await
    };
    assert!(query(&sign().await.at_sp(), "code").is_some());
    stack.idp.rotate_key().unwrap();
    assert!(
        query(&sign().await.at_sp(), "code").is_some(),
        "rotation not followed"
    );
    stack.set_scenario(parse_demo_scenario("bad_signature"));
    let (status, page) = sign().await.page();
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(page.contains("idp_signature_invalid"), "{page}");
    stack.stop().await;
}

/// Operators rotate a secret from the command line: the new one is shown once and works,
/// the old one keeps working only during the overlap asked (none here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_rotate_secrets_and_see_blocks() {
    let stack = Stack::start().await;
    // The front now remembers this secret as right...
    tokens_for_a(&stack).await;
    let (ok, out) = stack.admin(&["rotate-secret", SP_A, "0"]).await;
    assert!(ok, "{out}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .unwrap()
        .to_string();
    assert!(secret.len() >= 43);
    // ...and forgets it when the rotation reaches it through the bus, long before the
    // cache's 30 s: a few probes (fewer than a block takes), no code spent.
    let mut status = StatusCode::OK;
    for _ in 0..5 {
        status = token(
            &stack.hub,
            SP_A,
            SECRET_A,
            &Code::bare("no-such-code"),
            REDIRECT_A,
            true,
        )
        .await
        .0;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old secret is still remembered"
    );
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let code = req.code(&sign_in(&stack, &browser, &req, "camille").await.at_sp());
    let (status, body) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old secret still works: {body}"
    );
    let (status, body) = token(&stack.hub, SP_A, &secret, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (ok, out) = stack.admin(&["blocks"]).await;
    assert!(ok && out.contains("no block in force"), "{out}");
    let (ok, out) = stack.admin(&["unblock", "ip:203.0.113.9"]).await;
    assert!(
        !ok && out.contains("NotFound") || out.contains("no such subject"),
        "{out}"
    );
    let (ok, out) = stack.admin(&["suspend-sp", SP_B, "identity theft"]).await;
    assert!(ok && out.contains("suspended"), "{out}");

    // Every one of these calls is in the proof store, with the operator who made it and
    // what they asked, the refused unblock included (recorded before it ran).
    let wanted = [
        ("relais.registry.v1.Registry", "RotateClientSecret", SP_A),
        ("relais.oidc_front.v1.OidcFront", "ListBlocks", ""),
        (
            "relais.oidc_front.v1.OidcFront",
            "ClearBlock",
            "ip:203.0.113.9",
        ),
        (
            "relais.registry.v1.Registry",
            "SetServiceProviderStatus",
            "identity theft",
        ),
    ];
    let mut calls = Vec::new();
    for _ in 0..100 {
        calls = stack.proof_events("operator.call").await;
        if calls.len() >= wanted.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for (service, method, asked) in wanted {
        let found = calls
            .iter()
            .find(|c| c["service"] == service && c["method"] == method);
        let Some(call) = found else {
            panic!("{method} is not in the proof store: {calls:?}");
        };
        assert!(
            call["operator"]
                .as_str()
                .is_some_and(|o| o.ends_with(".operator.relais.internal")),
            "{call}"
        );
        let request = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            call["request"].as_str().unwrap(),
        )
        .unwrap();
        assert!(
            String::from_utf8_lossy(&request).contains(asked),
            "{method}: {call}"
        );
    }
    stack.stop().await;
}

/// private_key_jwt: a signed, short-lived, single-use assertion for this hub; and the
/// answers that SP registered: an encrypted ID token, userinfo signed then encrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_and_encrypted_answers() {
    let stack = Stack::start().await;
    let hub = stack.hub.clone();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let assertion_to = |key: &relais_jose::SigningKey, aud: Value, exp: i64| {
        let mut c = serde_json::Map::new();
        c.insert("iss".into(), SP_C.into());
        c.insert("sub".into(), SP_C.into());
        c.insert("aud".into(), aud);
        c.insert("exp".into(), exp.into());
        c.insert("jti".into(), random().into());
        key.sign(&c, "JWT").unwrap()
    };
    let assertion =
        |key: &relais_jose::SigningKey, aud: &str, exp: i64| assertion_to(key, aud.into(), exp);
    let code_for_c = || async {
        let browser = Browser::new();
        let req = AuthRequest::new(SP_C, REDIRECT_C, "openid email given_name");
        req.code(&sign_in(&stack, &browser, &req, "camille").await.at_sp())
    };
    let exchange = |code: Code, client_assertion: String| {
        let hub = hub.clone();
        async move {
            let r = reqwest::Client::new()
                .post(format!("{hub}/token"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.value.as_str()),
                    (
                        "code_verifier",
                        code.verifier.as_deref().unwrap_or_default(),
                    ),
                    ("redirect_uri", REDIRECT_C),
                    ("client_id", SP_C),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", client_assertion.as_str()),
                ])
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let keys = &stack.sp_c;
    let token_url = format!("{hub}/token");

    // Refused: another key, another audience, expired, valid too long.
    let stranger = relais_jose::SigningKey::generate(relais_jose::Alg::Es256).unwrap();
    // With the code that says which rule: `client_authentication_failed`, or the audience's own.
    let audience = Some("client_assertion_audience");
    let many = serde_json::json!([hub.as_str(), "https://elsewhere.example"]);
    for (bad, why, code) in [
        (
            assertion(&stranger, &hub, now() + 60),
            "unregistered key",
            None,
        ),
        (
            assertion(&keys.signing, "https://elsewhere.example", now() + 60),
            "another audience",
            audience,
        ),
        // What another server posing as the hub would have the client make.
        (
            assertion(&keys.signing, &token_url, now() + 60),
            "the token endpoint as audience",
            audience,
        ),
        (
            assertion_to(&keys.signing, many, now() + 60),
            "an array holding the issuer",
            audience,
        ),
        (assertion(&keys.signing, &hub, now() - 10), "expired", None),
        (
            assertion(&keys.signing, &hub, now() + 86_400),
            "valid for a day",
            None,
        ),
    ] {
        let (status, body) = exchange(code_for_c().await, bad).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
        assert_eq!(body["error"], "invalid_client", "{why}");
        let expected = code.unwrap_or("client_authentication_failed");
        assert_eq!(body["error_code"], expected, "{why}: {body}");
    }

    // Accepted once; the same assertion again is a replay.
    let good = assertion(&keys.signing, &hub, now() + 60);
    let (status, tokens) = exchange(code_for_c().await, good.clone()).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, body) = exchange(code_for_c().await, good).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "replayed jti: {body}");

    // The ID token is a JWE; inside, the hub's signed ID token.
    let jwe = tokens["id_token"].as_str().unwrap();
    assert_eq!(jwe.split('.').count(), 5, "not encrypted: {jwe}");
    let inner = relais_jose::decrypt(jwe, &keys.encryption.private_jwk_json).unwrap();
    let claims = verify_id_token(&hub, std::str::from_utf8(&inner).unwrap(), SP_C).await;
    assert_eq!(claims["aud"], SP_C);

    // Userinfo: application/jwt, encrypted, then signed by the hub.
    let r = reqwest::Client::new()
        .get(format!("{hub}/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/jwt");
    let body = r.text().await.unwrap();
    let inner = relais_jose::decrypt(&body, &keys.encryption.private_jwk_json).unwrap();
    let info = verify_hub_jwt(&hub, std::str::from_utf8(&inner).unwrap(), SP_C, false).await;
    assert_eq!(info["sub"], claims["sub"]);
    assert_eq!(info["email"], "camille.martin@demo-idp.test");

    // The registered method only: SP C cannot fall back to a secret.
    let (status, body) = token(
        &hub,
        SP_C,
        "sp-c-unused-secret-0123456789-0123456789-0123",
        &code_for_c().await,
        REDIRECT_C,
        true,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error_code"], "client_auth_method_mismatch");
    stack.stop().await;
}

/// Parameters outside their whitelist, and an id_token_hint the hub did not issue to the
/// client, are refused back to the SP with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_are_whitelisted_and_hints_checked() {
    let stack = Stack::start().await;
    let hub = stack.hub.clone();
    let browser = Browser::new();
    for (name, value) in [
        ("idp_hint", "../../admin"),
        ("login_hint", "x\u{0001}y"),
        ("ui_locales", "fr<script>"),
        (
            "state",
            "état-avec-accents-et-assez-long-pour-256-bits-d-entropie",
        ),
    ] {
        let mut req = AuthRequest::new(SP_A, REDIRECT_A, "openid").with(name, value);
        if name == "state" {
            req.state = value.to_string();
            req.extra.retain(|(k, _)| *k != "state");
        }
        let back = browser.get(&req.url(&hub)).await.at_sp();
        assert_eq!(
            query(&back, "error").as_deref(),
            Some("invalid_request"),
            "{name}"
        );
        assert!(
            query(&back, "error_description")
                .unwrap()
                .contains("invalid_parameter"),
            "{name}: {back}"
        );
    }
    // SP A's ID token is no hint for SP B; a forged one is no hint at all.
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let code = req.code(&sign_in(&stack, &browser, &req, "camille").await.at_sp());
    let (_, t) = token(&hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    let id_token = t["id_token"].as_str().unwrap();
    let req = AuthRequest::new(SP_B, REDIRECT_B, "openid").with("id_token_hint", id_token);
    let back = browser.get(&req.url(&hub)).await.at_sp();
    assert!(
        query(&back, "error_description")
            .unwrap()
            .contains("id_token_hint_invalid")
    );
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid")
        .with("id_token_hint", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.");
    let back = browser.get(&req.url(&hub)).await.at_sp();
    assert!(
        query(&back, "error_description")
            .unwrap()
            .contains("id_token_hint_invalid")
    );
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid").with("id_token_hint", id_token);
    let (status, _) = browser.get(&req.url(&hub)).await.page();
    assert_eq!(
        status,
        StatusCode::OK,
        "a genuine hint leads to the chooser"
    );
    stack.stop().await;
}

/// An access token in the URL is refused (RFC 6750 §2.3, RFC 9700 §2.4: URLs are logged
/// and leak through Referer), even a valid one; the header and a POST body are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_in_the_url_is_refused() {
    let stack = Stack::start().await;
    let hub = stack.hub.clone();
    let t = tokens_for_a(&stack).await;
    let access = t["access_token"].as_str().unwrap();
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{hub}/userinfo"))
        .query(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let challenge = r.headers()[reqwest::header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_request\""),
        "{challenge}"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert_eq!(body["error_code"], "access_token_in_query", "{body}");

    let r = http
        .post(format!("{hub}/userinfo"))
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(userinfo(&hub, access).await.0, StatusCode::OK);
    stack.stop().await;
}
