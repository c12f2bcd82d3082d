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
