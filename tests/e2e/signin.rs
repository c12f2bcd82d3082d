//! The whole sign-in, as a browser and an SP see it, then the proof of it in the traces.

use reqwest::StatusCode;

use crate::harness::*;

async fn full_sign_in(mode: Mode) {
    let stack = Stack::start_with(Options {
        mode,
        ..Options::default()
    })
    .await;
    let hub = stack.hub.clone();

    // Discovery is true to what the hub does.
    let discovery: serde_json::Value =
        reqwest::get(format!("{hub}/.well-known/openid-configuration"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(discovery["issuer"], hub);
    assert_eq!(
        discovery["authorization_response_iss_parameter_supported"],
        true
    );
    assert_eq!(discovery["token_endpoint"], format!("{hub}/token"));

    let browser = Browser::new();
    let req = AuthRequest::new(
        SP_A,
        REDIRECT_A,
        "openid given_name usual_name email idp_acr",
    )
    .with("acr_values", "eidas2");
    let (status, chooser) = browser.get(&req.url(&hub)).await.page();
    assert_eq!(status, StatusCode::OK);
    assert!(chooser.contains("Service A"), "{chooser}");
    // The IdP that cannot reach eidas2 is shown, but cannot be chosen.
    assert!(chooser.contains("IdP faible"), "{chooser}");
    let (status, login) = browser.choose(&hub, &chooser, "demo-idp").await.page();
    assert_eq!(status, StatusCode::OK);
    assert!(
        login.contains("Service A"),
        "the IdP must be told the SP's name: {login}"
    );
    let back = browser
        .login(stack.idp.issuer(), &login, "jean", "none")
        .await
        .at_sp();
    assert!(back.as_str().starts_with(REDIRECT_A));
    assert_eq!(query(&back, "state").as_deref(), Some(req.state.as_str()));
    assert_eq!(query(&back, "iss").as_deref(), Some(hub.as_str()));
    let code = req.code(&back);
    assert!(code.value.len() >= 43);

    let (status, tokens) = token(&hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let id_token = tokens["id_token"].as_str().unwrap();
    let claims = verify_id_token(&hub, id_token, SP_A).await;
    assert_eq!(claims["nonce"], req.nonce.as_str());
    assert_eq!(claims["acr"], "eidas2");
    assert!(claims["auth_time"].is_i64());
    assert_eq!(
        jsonwebtoken::decode_header(id_token).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );
    let sub = claims["sub"].as_str().unwrap().to_string();
    assert_eq!(sub.len(), 64);

    let access = tokens["access_token"].as_str().unwrap();
    let (status, info) = userinfo(&hub, access).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["sub"], sub.as_str());
    assert_eq!(info["given_name"], "Jean Pierre");
    assert_eq!(info["email"], "jean.dupont@demo-idp.test");
    assert_eq!(info["idp_acr"], "eidas2");
    // Exactly what the scopes asked AND the habilitation allow.
    let mut keys: Vec<&str> = info
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["email", "given_name", "idp_acr", "sub", "usual_name"]
    );

    // RP-initiated logout goes through the IdP and back to the SP.
    let logout_state = random();
    let mut u = url::Url::parse(&format!("{hub}/end_session")).unwrap();
    u.query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", LOGOUT_A)
        .append_pair("state", &logout_state);
    let back = browser.get(u.as_str()).await.at_sp();
    assert!(back.as_str().starts_with(LOGOUT_A), "{back}");
    assert_eq!(
        query(&back, "state").as_deref(),
        Some(logout_state.as_str())
    );

    // The proof: one connection with every field of the terms of use.
    let conns = stack
        .connections_until(SP_A, &sub, |c| c.len() == 1 && c[0].outcome == "logged_out")
        .await;
    let c = stack.connection(&conns[0].connection_id).await;
    assert_eq!(c.source_ip, "127.0.0.1");
    assert_ne!(c.source_port, 0);
    assert!(!c.started_at.is_empty());
    assert_eq!(c.sp_id, SP_A);
    assert_eq!(c.idp_id, "demo-idp");
    assert_eq!(c.acr, "eidas2");
    assert!(!c.sub_fi.is_empty());
    assert_eq!(c.sub_fs, sub);
    assert!(!c.account_id.is_empty());
    let steps: Vec<&str> = c.steps.iter().map(|s| s.kind.as_str()).collect();
    for expected in [
        "authorize_initiated",
        "chooser_shown",
        "idp_chosen",
        "idp_redirected",
        "idp_callback",
        "identity_verified",
        "code_issued",
        "token_issued",
        "userinfo_served",
        "logout_requested",
        "logout_propagated",
        "session_ended",
    ] {
        assert_eq!(
            steps.iter().filter(|s| **s == expected).count(),
            1,
            "step {expected} in {steps:?}"
        );
    }
    let chain = stack
        .trace
        .clone()
        .verify_chain(relais_proto::trace::v1::VerifyChainRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(chain.intact);

    // The published checkpoint is signed by the proof store's key, and the sign-in's record
    // is proven to be in its tree.
    let made = stack
        .trace
        .clone()
        .make_checkpoint(relais_proto::trace::v1::MakeCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    let published = reqwest::get(format!("{hub}/.well-known/relais-checkpoint"))
        .await
        .unwrap();
    assert_eq!(published.status(), StatusCode::OK);
    let kind = published.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(kind.starts_with("text/plain"), "{kind}");
    let note = published.text().await.unwrap();
    assert_eq!(note, made.note);
    let trace_config = relais_trace::TraceConfig::default();
    let key = trace_config.key().unwrap();
    assert_eq!(made.verifier_key, key.verifier_key());
    let checkpoint =
        relais_trace::checkpoint::open(&note, key.verifier_key(), &trace_config.origin).unwrap();
    // The operator's checkpoint call is itself recorded before the checkpoint is signed.
    assert!(checkpoint.size > chain.tree_size, "{checkpoint:?}");
    let record = c
        .steps
        .iter()
        .find(|s| s.kind == "code_issued" && !s.event_id.contains('#'))
        .unwrap_or_else(|| panic!("no sign-in record in {:?}", c.steps));
    let proof = stack
        .trace
        .clone()
        .get_inclusion_proof(relais_proto::trace::v1::GetInclusionProofRequest {
            record: Some(
                relais_proto::trace::v1::get_inclusion_proof_request::Record::EventId(
                    record.event_id.clone(),
                ),
            ),
            tree_size: checkpoint.size,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(proof.body.contains(&c.connection_id), "{}", proof.body);
    let path: Vec<relais_trace::tree::Hash> = proof
        .hashes
        .iter()
        .map(|h| relais_trace::tree::to_hash(h).unwrap())
        .collect();
    relais_trace::tree::check_inclusion(
        &path,
        checkpoint.size,
        checkpoint.root,
        proof.leaf_index,
        relais_trace::tree::leaf_hash(&proof.body),
    )
    .unwrap();
    // An operator's commands: a checkpoint now, the log verified against a kept one.
    let (ok, out) = stack.admin(&["checkpoint"]).await;
    assert!(ok, "{out}");
    assert!(
        out.starts_with(&format!("{}\n", trace_config.origin)),
        "{out}"
    );
    let kept = std::env::temp_dir().join(format!("relais-checkpoint-{}", uuid::Uuid::new_v4()));
    std::fs::write(&kept, &note).unwrap();
    let (ok, out) = stack.admin(&["verify-log", kept.to_str().unwrap()]).await;
    std::fs::remove_file(&kept).unwrap();
    assert!(ok && out.starts_with("intact: "), "{out}");
    // The retention's purge on demand: nothing is 36 months old here; each run recorded.
    let (ok, out) = stack.admin(&["purge", "--dry-run"]).await;
    assert!(ok && out.contains("would purge 0 records"), "{out}");
    let (ok, out) = stack.admin(&["purge"]).await;
    assert!(ok && out.contains("purged 0 records"), "{out}");
    assert!(out.contains("retention 36 months"), "{out}");
    let (ok, out) = stack.admin(&["purge", "--everything"]).await;
    assert!(!ok, "{out}");
    let mut purges = 0;
    for _ in 0..100 {
        purges = stack
            .proof_events("operator.call")
            .await
            .iter()
            .filter(|c| c["method"] == "Purge")
            .count();
        if purges >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(purges, 2, "each purge is an operator's call in the log");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_all_in_one() {
    full_sign_in(Mode::AllInOne).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_one_process_per_service() {
    full_sign_in(Mode::Processes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subjects_are_per_sp_and_stable() {
    let stack = Stack::start().await;
    let hub = stack.hub.clone();
    let mut subs = Vec::new();
    for (client, redirect, secret, scope) in [
        (SP_A, REDIRECT_A, SECRET_A, "openid email"),
        (SP_A, REDIRECT_A, SECRET_A, "openid email"),
        (SP_B, REDIRECT_B, SECRET_B, "openid email"),
    ] {
        let browser = Browser::new();
        let req = AuthRequest::new(client, redirect, scope);
        let back = sign_in(&stack, &browser, &req, "karim").await.at_sp();
        let code = req.code(&back);
        let (status, t) = token(&hub, client, secret, &code, redirect, client == SP_A).await;
        assert_eq!(status, StatusCode::OK, "{t}");
        let claims = verify_id_token(&hub, t["id_token"].as_str().unwrap(), client).await;
        subs.push(claims["sub"].as_str().unwrap().to_string());
        if client == SP_B {
            // This SP is registered for RS256.
            let alg = jsonwebtoken::decode_header(t["id_token"].as_str().unwrap())
                .unwrap()
                .alg;
            assert_eq!(alg, jsonwebtoken::Algorithm::RS256);
        }
    }
    assert_eq!(
        subs[0], subs[1],
        "the same person at the same SP keeps one subject"
    );
    assert_ne!(subs[0], subs[2], "two SPs never share a subject");
    stack.stop().await;
}

/// SP A's subject for `who` signing in through `idp`.
async fn subject_through(stack: &Stack, idp: &str, who: &str) -> String {
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let (_, chooser) = browser.get(&req.url(&stack.hub)).await.page();
    let (status, login) = browser.choose(&stack.hub, &chooser, idp).await.page();
    assert_eq!(status, StatusCode::OK, "{login}");
    let back = browser
        .login(stack.idp.issuer(), &login, who, "none")
        .await
        .at_sp();
    let code = req.code(&back);
    let (status, tokens) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify_id_token(&stack.hub, tokens["id_token"].as_str().unwrap(), SP_A).await;
    claims["sub"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_follow_the_idp_subject_or_the_pivot_identity_as_the_deployment_says() {
    // ProConnect's way, the default: each IdP's account of a person is an account.
    let stack = Stack::start().await;
    let a = subject_through(&stack, "demo-idp", "camille").await;
    let b = subject_through(&stack, "weak-idp", "camille").await;
    assert_ne!(a, b);
    stack.stop().await;

    // FranceConnect's way: the same person through any IdP is one account, one subject.
    let stack = Stack::start_with(Options {
        tweak: |c| {
            c.oidc_front.accounts =
                relais_oidc_front::domain::accounts::AccountMapping::PivotIdentity
        },
        ..Options::default()
    })
    .await;
    let a = subject_through(&stack, "demo-idp", "camille").await;
    let b = subject_through(&stack, "weak-idp", "camille").await;
    assert_eq!(a, b);
    let other = subject_through(&stack, "demo-idp", "jean").await;
    assert_ne!(a, other);
    stack.stop().await;
}
