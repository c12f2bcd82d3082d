//! What the gateway answers on its own: backend down or slow, requests it cannot parse,
//! unknown pages. None of these may reach oidc-front with a partial request.

use std::time::{Duration, Instant};

use relais_proto::oidc_front::v1::{ApiResponse, FlowResponse};
use tokio::net::TcpStream;

use crate::support::{self, assert_no_store, assert_security_headers, raw, redirect};

#[tokio::test]
async fn backend_down_gives_a_503_page_for_browsers() {
    let gw = support::start_without_backend().await;
    let r = support::http()
        .get(gw.url("/authorize?client_id=a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_security_headers(r.headers());
    assert_no_store(r.headers());
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let html = r.text().await.unwrap();
    assert!(
        html.contains(r#"<code class="code">service_unavailable</code>"#),
        "{html}"
    );
    assert!(html.contains(&format!(r#"<code class="request-id">{id}</code>"#)));
    assert!(html.contains("momentanément indisponible"));
}

#[tokio::test]
async fn backend_down_gives_oauth_json_for_api_routes() {
    let gw = support::start_without_backend().await;
    let http = support::http();
    let r = http
        .post(gw.url("/token"))
        .form(&[("grant_type", "authorization_code")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_no_store(r.headers());
    assert_security_headers(r.headers());
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(body["request_id"], id);
    let r = http.get(gw.url("/userinfo")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
}

#[tokio::test]
async fn a_slow_backend_is_cut_at_the_request_timeout() {
    let gw = support::start(|c| c.request_timeout_ms = 300).await;
    gw.fake.answer_flow(redirect("https://sp.example/"));
    gw.fake.delay(Duration::from_secs(5));
    let started = Instant::now();
    let r = support::http()
        .get(gw.url("/authorize"))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("service_unavailable"));
}

#[tokio::test]
async fn bodies_over_the_limit_never_reach_the_backend() {
    let gw = support::start(|c| c.max_body_bytes = 1024).await;
    gw.fake.answer_flow(redirect("https://sp.example/"));
    let big = format!("code={}", "a".repeat(2000));
    let http = support::http();
    let r = http
        .post(gw.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_security_headers(r.headers());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");

    let r = http
        .post(gw.url("/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("malformed_request"));

    // Chunked, so no Content-Length announces the size: the read itself must stop.
    let chunk = "a".repeat(700);
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let response = raw(
        &mut stream,
        &format!(
            "POST /chooser HTTP/1.1\r\nHost: relais.test\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n\
             2bc\r\n{chunk}\r\n2bc\r\n{chunk}\r\n0\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(response.status, 400);
    assert!(response.body.contains("malformed_request"));
    assert!(gw.fake.calls().is_empty());
}

#[tokio::test]
async fn unparsable_requests_are_refused_before_the_backend() {
    let gw = support::start(|_| {}).await;
    let http = support::http();
    let r = http
        .get(gw.url("/authorize?name=%ff%fe"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("malformed_request"));
    let r = http
        .get(gw.url("/idp/callback?code=%zz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .post(gw.url("/token"))
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"authorization_code"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(gw.fake.calls().is_empty());
}

#[tokio::test]
async fn unknown_paths_get_a_404_page_with_security_headers() {
    let gw = support::start(|c| c.public_url = "https://relais.example".into()).await;
    let r = support::http()
        .get(gw.url("/nope"))
        .header("accept-language", "en-US,en;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_security_headers(r.headers());
    assert_eq!(r.headers()["strict-transport-security"], "max-age=63072000");
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"<code class="code">not_found</code>"#));
    assert!(html.contains(r#"<html lang="en">"#));
    assert!(gw.fake.calls().is_empty());
}

/// The gateway's own pages follow oidc-front's rule: the first language the hub writes,
/// in the browser's order (German first, then English: English).
#[tokio::test]
async fn the_gateways_pages_speak_the_language_oidc_fronts_would() {
    let gw = support::start(|_| {}).await;
    for (header, lang) in [("de,en", "en"), ("de", "fr"), ("es;q=1,fr-CA;q=0.5", "fr")] {
        let r = support::http()
            .get(gw.url("/nope"))
            .header("accept-language", header)
            .send()
            .await
            .unwrap();
        let html = r.text().await.unwrap();
        assert!(
            html.contains(&format!(r#"<html lang="{lang}">"#)),
            "{header}: {html}"
        );
    }
}

#[tokio::test]
async fn unusable_backend_answers_are_not_passed_on() {
    let gw = support::start(|_| {}).await;
    gw.fake.answer_flow(FlowResponse::default());
    gw.fake.answer_api(ApiResponse {
        http_status: 42,
        ..Default::default()
    });
    let http = support::http();
    let r = http.get(gw.url("/authorize")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let r = http.post(gw.url("/token")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
}

#[tokio::test]
async fn too_many_headers_are_refused_by_the_server() {
    let gw = support::start(|_| {}).await;
    let extra: String = (0..80).map(|i| format!("X-Filler-{i}: x\r\n")).collect();
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let response = raw(
        &mut stream,
        &format!("GET /healthz HTTP/1.1\r\nHost: relais.test\r\n{extra}Connection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(response.status, 431);
}
