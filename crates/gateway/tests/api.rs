//! JSON routes for SP back ends: token, userinfo, discovery and JWKS.

use relais_proto::oidc_front::v1::ApiResponse;

use crate::support::{self, Call, assert_no_store, assert_security_headers, params};

#[tokio::test]
async fn token_passes_form_and_authorization_and_returns_the_answer() {
    let gw = support::start(|_| {}).await;
    gw.fake.answer_api(ApiResponse {
        http_status: 401,
        content_type: "application/json".into(),
        body: r#"{"error":"invalid_client"}"#.into(),
        www_authenticate: r#"Basic realm="relais""#.into(),
        retry_after_seconds: 0,
    });
    let r = support::http()
        .post(gw.url("/token"))
        .header("authorization", "Basic c3AxOnNlY3JldA==")
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "abc"),
            ("code", "def"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], r#"Basic realm="relais""#);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_no_store(r.headers());
    assert_security_headers(r.headers());
    assert_eq!(r.text().await.unwrap(), r#"{"error":"invalid_client"}"#);
    let calls = gw.fake.calls();
    let [Call::Token(req)] = calls.as_slice() else {
        panic!("{calls:?}")
    };
    assert_eq!(req.authorization, "Basic c3AxOnNlY3JldA==");
    assert_eq!(
        req.params,
        params(&[
            ("grant_type", "authorization_code"),
            ("code", "abc"),
            ("code", "def")
        ])
    );
    assert!(req.source.is_some());
}

#[tokio::test]
async fn revoke_and_introspect_reach_their_calls() {
    let gw = support::start(|_| {}).await;
    gw.fake.answer_api(ApiResponse {
        http_status: 200,
        content_type: "application/json".into(),
        body: r#"{"active":false}"#.into(),
        www_authenticate: String::new(),
        retry_after_seconds: 0,
    });
    for path in ["/revoke", "/introspect"] {
        let r = support::http()
            .post(gw.url(path))
            .header("authorization", "Basic c3AxOnNlY3JldA==")
            .form(&[("token", "t0k3n")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_no_store(r.headers());
    }
    let calls = gw.fake.calls();
    let [Call::Revoke(revoke), Call::Introspect(introspect)] = calls.as_slice() else {
        panic!("{calls:?}")
    };
    for req in [revoke, introspect] {
        assert_eq!(req.params, params(&[("token", "t0k3n")]));
        assert_eq!(req.authorization, "Basic c3AxOnNlY3JldA==");
    }
}

#[tokio::test]
async fn userinfo_get_and_post() {
    let gw = support::start(|_| {}).await;
    gw.fake.answer_api(ApiResponse {
        http_status: 200,
        content_type: "application/jwt".into(),
        body: "eyJ.eyJ.sig".into(),
        www_authenticate: String::new(),
        retry_after_seconds: 0,
    });
    let http = support::http();
    let got = http
        .get(gw.url("/userinfo?schema=openid"))
        .header("authorization", "Bearer at-1")
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "application/jwt");
    assert!(!got.headers().contains_key("www-authenticate"));
    assert_no_store(got.headers());
    assert_eq!(got.text().await.unwrap(), "eyJ.eyJ.sig");
    let posted = http
        .post(gw.url("/userinfo"))
        .form(&[("access_token", "at-2")])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let calls = gw.fake.calls();
    let [Call::UserInfo(get), Call::UserInfo(post)] = calls.as_slice() else {
        panic!("{calls:?}")
    };
    assert_eq!(get.authorization, "Bearer at-1");
    assert_eq!(get.params, params(&[("schema", "openid")]));
    assert_eq!(post.authorization, "");
    assert_eq!(post.params, params(&[("access_token", "at-2")]));
}

#[tokio::test]
async fn discovery_and_jwks_are_cacheable_json() {
    let gw = support::start(|_| {}).await;
    let http = support::http();
    for (path, body) in [
        (
            "/.well-known/openid-configuration",
            r#"{"issuer":"http://127.0.0.1"}"#,
        ),
        ("/jwks", r#"{"keys":[]}"#),
    ] {
        let r = http.get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.headers()["cache-control"], "public, max-age=300");
        assert_security_headers(r.headers());
        assert_eq!(r.text().await.unwrap(), body);
    }
    assert!(matches!(
        gw.fake.calls().as_slice(),
        [Call::Discovery, Call::Jwks]
    ));
}

#[tokio::test]
async fn healthz_needs_no_backend() {
    let gw = support::start_without_backend().await;
    let r = support::http()
        .get(gw.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_security_headers(r.headers());
    assert_eq!(r.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn the_support_api_is_described_and_answers_in_json_even_when_support_is_down() {
    let gw = support::start(|_| {}).await;
    let doc: serde_json::Value = support::http()
        .get(gw.url("/api/support/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Every route served is described, with the methods it answers.
    let mut described: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            described.push(format!("{method} {path}"));
        }
    }
    described.sort();
    assert_eq!(
        described,
        [
            "get /indicator",
            "get /quarantined-mail",
            "get /tickets",
            "get /tickets/{id}",
            "post /mail",
            "post /tickets",
            "post /tickets/{id}/acknowledge",
            "post /tickets/{id}/blocking",
            "post /tickets/{id}/close-agreements",
            "post /tickets/{id}/comments",
            "post /tickets/{id}/confirmation",
            "post /tickets/{id}/information-requests",
            "post /tickets/{id}/resolution",
            "put /tickets/{id}/assignee",
            "put /tickets/{id}/severity",
        ]
    );
    assert!(doc["components"]["schemas"]["Ticket"]["properties"]["resolve_by"].is_object());

    // What the gateway refuses itself, before any call: JSON with a code, never a page.
    let client = support::http();
    let cases = [
        (client.get(gw.url("/api/support/v1/nothing-here")), 404, "not_found"),
        (
            client
                .post(gw.url("/api/support/v1/tickets"))
                .header("content-type", "application/json")
                .body("{\"partner_kind\": 1"),
            400,
            "invalid_request",
        ),
        (
            client
                .post(gw.url("/api/support/v1/tickets"))
                .header("content-type", "application/json")
                .body(r#"{"partner_kind":"sp","partner_id":"a","scope":"one_user","subject":"x","colour":"red"}"#),
            400,
            "invalid_request",
        ),
        (
            client.get(gw.url("/api/support/v1/tickets?limit=many")),
            400,
            "invalid_request",
        ),
        // Support down: 503 in JSON, nothing else said.
        (
            client
                .get(gw.url("/api/support/v1/tickets"))
                .bearer_auth("some-token"),
            503,
            "service_unavailable",
        ),
    ];
    for (request, status, code) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), status);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_no_store(r.headers());
        assert_security_headers(r.headers());
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], code, "{body}");
        assert!(body["request_id"].is_string());
    }
    assert!(gw.fake.calls().is_empty());
}

#[tokio::test]
async fn the_checkpoint_answers_in_json_when_the_proof_store_does_not() {
    // The harness's trace service is not running (the signed note itself: e2e `signin`).
    let gw = support::start(|_| {}).await;
    let r = support::http()
        .get(gw.url("/.well-known/relais-checkpoint"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let kind = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("application/json"), "{kind}");
    assert_security_headers(r.headers());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
}

/// A JSON body over `gateway.max_body_bytes` is refused by the gateway (413, in JSON)
/// before support is called, like the OIDC routes' bodies: not at axum's own 2 MiB.
#[tokio::test]
async fn support_json_bodies_are_held_to_the_gateways_body_limit() {
    let gw = support::start(|c| c.max_body_bytes = 1024).await;
    let ticket = |body: &str| {
        serde_json::json!({
            "partner_kind": "sp",
            "partner_id": "a",
            "scope": "one_user",
            "subject": "x",
            "body": body,
        })
        .to_string()
    };
    let r = support::http()
        .post(gw.url("/api/support/v1/tickets"))
        .header("content-type", "application/json")
        .bearer_auth("some-token")
        .body(ticket(&"a".repeat(64 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert!(gw.fake.calls().is_empty(), "support was called");
    // Within the limit, the same request goes on to support.
    let r = support::http()
        .post(gw.url("/api/support/v1/tickets"))
        .header("content-type", "application/json")
        .bearer_auth("some-token")
        .body(ticket("short"))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 413);
}
