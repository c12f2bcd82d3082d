//! The support API over HTTP, as partners' contacts and support staff use it: people
//! sign in to the support console through Relais, its access token opens the API, the
//! registry says who they are, every call is authorised by role and lands in the proof
//! store.

use relais_config::Secret;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::*;

const INTAKE_SECRET: &str = "e2e-mail-intake-secret-0123456789-0123456789";

/// Signs `identity` in to `client` through the chooser and the demo IdP; the access token.
async fn access_token(stack: &Stack, client: &'static str, identity: &str) -> String {
    let (secret, redirect) = match client {
        CONSOLE => (CONSOLE_SECRET, REDIRECT_CONSOLE),
        _ => (SECRET_A, REDIRECT_A),
    };
    let browser = Browser::new();
    let req = AuthRequest::new(client, redirect, "openid email");
    let back = sign_in(stack, &browser, &req, identity).await.at_sp();
    let code = req.code(&back);
    let (status, t) = token(&stack.hub, client, secret, &code, redirect, true).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    t["access_token"].as_str().unwrap().to_owned()
}

async fn call(
    stack: &Stack,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut request =
        reqwest::Client::new().request(method, format!("{}/api/support/v1{path}", stack.hub));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    assert_eq!(headers["content-type"], "application/json", "{path}");
    assert_eq!(headers["cache-control"], "no-store", "{path}");
    (status, r.json().await.unwrap(), headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_and_staff_use_the_support_api_with_console_tokens_and_every_call_is_proof() {
    let stack = Stack::start_with(Options {
        tweak: |c| c.support.mail_intake_secret = Secret::new(INTAKE_SECRET),
        ..Options::default()
    })
    .await;
    let jean = access_token(&stack, CONSOLE, "jean").await;
    let staff = access_token(&stack, CONSOLE, "marie-helene").await;

    // A contact files for their own partner.
    let new = json!({
        "partner_kind": "sp", "partner_id": SP_A, "scope": "one_user",
        "subject": "Un usager ne peut plus se connecter", "body": "Depuis ce matin."
    });
    let (status, ticket, _) = call(
        &stack,
        Method::POST,
        "/tickets",
        Some(&jean),
        Some(new.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let id = ticket["id"].as_str().unwrap().to_owned();
    assert_eq!(ticket["partner_id"], SP_A);
    assert_eq!(ticket["severity"], 4);
    assert_eq!(ticket["status"], "open");
    assert!(ticket["resolve_by"].is_string());
    assert!(ticket["acknowledged_at"].is_null());
    assert_eq!(
        ticket["history"][0]["actor"],
        format!("jean.dupont@demo-idp.test (sp:{SP_A})")
    );

    // … and for nobody else; a contact reads no indicator and acknowledges nothing.
    let elsewhere = json!({
        "partner_kind": "sp", "partner_id": SP_B, "scope": "one_user", "subject": "x"
    });
    let refusals = [
        (Method::POST, "/tickets".to_owned(), Some(elsewhere)),
        (
            Method::GET,
            "/indicator?from=2026-01-01T00:00:00Z&to=2026-12-31T00:00:00Z".to_owned(),
            None,
        ),
        (Method::POST, format!("/tickets/{id}/acknowledge"), None),
        (
            Method::GET,
            format!("/tickets?partner_kind=sp&partner_id={SP_B}"),
            None,
        ),
    ];
    for (method, path, body) in refusals {
        let (status, error, _) = call(&stack, method, &path, Some(&jean), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {error}");
        assert_eq!(error["error"], "forbidden", "{path}");
    }
    let (_, own, _) = call(&stack, Method::GET, "/tickets", Some(&jean), None).await;
    assert_eq!(own["tickets"].as_array().unwrap().len(), 1);

    // Staff see it, take it in hand and read the indicator.
    let (status, acknowledged, _) = call(
        &stack,
        Method::POST,
        &format!("/tickets/{id}/acknowledge"),
        Some(&staff),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{acknowledged}");
    assert!(acknowledged["acknowledged_at"].is_string());
    assert_eq!(
        acknowledged["history"][1]["actor"],
        "marie-helene.lefevre@demo-idp.test (level1)"
    );
    let (status, severity, _) = call(
        &stack,
        Method::PUT,
        &format!("/tickets/{id}/severity"),
        Some(&staff),
        Some(json!({ "severity": 9 })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{severity}");
    let (status, indicator, _) = call(
        &stack,
        Method::GET,
        "/indicator?from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
        Some(&staff),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{indicator}");
    assert_eq!(indicator["target_percent"], 95.0);

    // Somebody the registry does not know, a token of another client, a revoked token,
    // no token: nothing is served.
    let karim = access_token(&stack, CONSOLE, "karim").await;
    let (status, error, headers) = call(&stack, Method::GET, "/tickets", Some(&karim), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let karim_request = headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(error["request_id"], karim_request.as_str());
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("karim.benali@demo-idp.test is neither"),
        "{error}"
    );
    let service_a = access_token(&stack, SP_A, "jean").await;
    let revoked = access_token(&stack, CONSOLE, "jean").await;
    let r = reqwest::Client::new()
        .post(format!("{}/revoke", stack.hub))
        .basic_auth(CONSOLE, Some(CONSOLE_SECRET))
        .form(&[("token", revoked.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for (what, token) in [
        ("another client's token", Some(service_a.as_str())),
        ("a revoked token", Some(revoked.as_str())),
        ("a made-up token", Some("not-a-token")),
        ("no token", None),
    ] {
        let (status, error, headers) =
            call(&stack, Method::GET, &format!("/tickets/{id}"), token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {error}");
        assert_eq!(error["error"], "invalid_token", "{what}");
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer realm=\"relais-support\""),
            "{what}: {challenge}"
        );
    }

    // The mail gateway posts raw mail with its secret; a contact's mail opens a ticket.
    let raw = "From: Jean Dupont <jean.dupont@demo-idp.test>\r\nTo: support@relais.example\r\n\
Subject: Deuxieme souci\r\nMessage-ID: <e2e-1@demo-idp.test>\r\n\r\nBonjour.\r\n";
    let post_mail = |secret: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/api/support/v1/mail", stack.hub))
            .bearer_auth(secret)
            .header("content-type", "message/rfc822")
            .body(raw)
            .send()
    };
    let refused = post_mail("e2e-mail-intake-secret-0123456789-012345678x")
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let taken: Value = post_mail(INTAKE_SECRET)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(taken["outcome"], "opened", "{taken}");
    let (_, mailed, _) = call(
        &stack,
        Method::GET,
        &format!("/tickets/{}", taken["ticket_id"].as_str().unwrap()),
        Some(&jean),
        None,
    )
    .await;
    assert_eq!(mailed["partner_id"], SP_A);

    // Every call is in the proof store, refusals included, with who made it.
    let mut calls = Vec::new();
    for _ in 0..100 {
        calls = stack.proof_events("support.call").await;
        if calls.len() >= 17 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(calls.len(), 17, "{calls:#?}");
    let seen = |caller: &str, method: &str, outcome: &str| {
        calls.iter().any(|c| {
            c["caller"].as_str().unwrap_or_default().starts_with(caller)
                && c["method"] == method
                && c["outcome"] == outcome
        })
    };
    assert!(seen("jean.dupont@demo-idp.test", "OpenTicket", "ok"));
    assert!(seen(
        "jean.dupont@demo-idp.test",
        "GetIndicator",
        "forbidden"
    ));
    assert!(seen(
        "marie-helene.lefevre@demo-idp.test",
        "Acknowledge",
        "ok"
    ));
    assert!(seen("unidentified caller", "ListTickets", "forbidden"));
    assert!(
        calls
            .iter()
            .any(|c| c["request_id"] == karim_request.as_str() && c["outcome"] == "forbidden"),
        "the refusal is found by the request id the caller was given"
    );
    assert!(seen("unidentified caller", "GetTicket", "invalid_token"));
    assert!(seen("mail gateway", "SubmitMail", "invalid_token"));
    assert!(seen("mail gateway", "SubmitMail", "ok"));
    // Each with where the HTTP request came from, to match the gateway's logs.
    for c in &calls {
        assert_eq!(c["source_ip"], "127.0.0.1", "{c}");
        assert_eq!(c["request_id"].as_str().map(str::len), Some(36), "{c}");
    }
    // The ticket's changes are there too.
    assert!(!stack.proof_events("support.ticket.opened").await.is_empty());
    for c in &calls {
        let text = c.to_string();
        for token in [&jean, &staff, &karim, &service_a, &revoked] {
            assert!(!text.contains(token.as_str()), "a token in the proof store");
        }
    }

    // The document describing all this is served by the hub.
    let doc: Value = reqwest::get(format!("{}/api/support/v1/openapi.json", stack.hub))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/tickets/{id}/acknowledge"]["post"].is_object());
    stack.stop().await;
}

/// An `email` claim is not an identity: a person is the subject their enrolled IdP gave
/// them (recorded at their first use), and staff sign in at a staff level (RFC 9470).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_are_their_enrolled_idp_identity_and_staff_sign_in_strongly() {
    let stack = Stack::start().await;
    let jean_sub = "5f0a77c3d9e14b6a9c2e0b8d4f6a1e33";
    assert_eq!(
        bound_sub(&stack, "jean.dupont@demo-idp.test").await,
        "",
        "enrolled with the IdP only"
    );

    // Jean's first use through the demo IdP records his subject there.
    let jean = access_token(&stack, CONSOLE, "jean").await;
    let (status, body, _) = call(&stack, Method::GET, "/tickets", Some(&jean), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        bound_sub(&stack, "jean.dupont@demo-idp.test").await,
        jean_sub
    );
    let (status, body, _) = call(&stack, Method::GET, "/tickets", Some(&jean), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Enrolled as another subject, or through another IdP: his e-mail claim admits nothing.
    // A refused call binds nobody: the stored subject is what the enrolment left.
    for (tampered, left) in [
        (
            "UPDATE people SET idp_sub = 'another-person' WHERE email = 'jean.dupont@demo-idp.test'",
            "another-person",
        ),
        (
            "UPDATE people SET idp_id = 'other-idp', idp_sub = NULL \
             WHERE email = 'jean.dupont@demo-idp.test'",
            "",
        ),
        (
            "UPDATE people SET idp_id = NULL, idp_sub = NULL \
             WHERE email = 'jean.dupont@demo-idp.test'",
            "",
        ),
    ] {
        stack.sql("registry", tampered).await;
        let (status, error, _) = call(&stack, Method::GET, "/tickets", Some(&jean), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{tampered}: {error}");
        assert_eq!(error["error"], "identity_mismatch", "{tampered}");
        assert!(
            !error.to_string().contains("another-person"),
            "the enrolled subject is never told: {error}"
        );
        assert_eq!(
            bound_sub(&stack, "jean.dupont@demo-idp.test").await,
            left,
            "{tampered}"
        );
    }

    // Camille is staff but signs in at eidas1: told which levels would do.
    let camille = access_token(&stack, CONSOLE, "camille").await;
    let (status, error, headers) =
        call(&stack, Method::GET, "/tickets", Some(&camille), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");
    assert_eq!(error["error"], "insufficient_user_authentication");
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_user_authentication\"")
            && challenge.contains("acr_values=\"eidas2 eidas3\""),
        "{challenge}"
    );
    // … and her refused call bound nothing either.
    assert_eq!(bound_sub(&stack, "camille.martin@demo-idp.test").await, "");
    stack.stop().await;
}

/// The IdP subject the registry holds for a person ("" for none).
async fn bound_sub(stack: &Stack, email: &str) -> String {
    stack
        .sql(
            "registry",
            &format!("SELECT coalesce(idp_sub, '') FROM people WHERE email = '{email}'"),
        )
        .await[0]
        .get::<_, String>(0)
}
