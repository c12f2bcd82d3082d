//! Browser flow routes: what reaches oidc-front, and redirects and cookies coming back.

use relais_proto::oidc_front::v1::{CookieUpdate, FlowResponse};
use tokio::net::TcpStream;

use crate::support::{self, Call, params, raw, redirect};

#[tokio::test]
async fn authorize_get_sends_every_param_in_order_and_the_source() {
    let gw = support::start(|_| {}).await;
    gw.fake
        .answer_flow(redirect("https://sp.example/cb?code=abc"));
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let port = stream.local_addr().unwrap().port();
    let response = raw(
        &mut stream,
        "GET /authorize?scope=openid&client_id=sp1&scope=profile&acr_values=eidas2&x=caf%C3%A9+au+lait&empty= HTTP/1.1\r\n\
         Host: relais.test\r\nUser-Agent: test-agent/1.0\r\nAccept-Language: en-GB,fr;q=0.5\r\n\
         Cookie: other=1; relais_session=sess-1\r\nX-Forwarded-For: 203.0.113.9\r\n\
         Connection: close\r\n\r\n",
    )
    .await;

    assert_eq!(response.status, 303);
    assert_eq!(
        response.header("location"),
        Some("https://sp.example/cb?code=abc")
    );
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let request_id = response.header("x-request-id").unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&request_id).is_ok(), "{request_id}");

    let calls = gw.fake.calls();
    let [Call::Authorize(req)] = calls.as_slice() else {
        panic!("{calls:?}")
    };
    assert_eq!(
        req.params,
        params(&[
            ("scope", "openid"),
            ("client_id", "sp1"),
            ("scope", "profile"),
            ("acr_values", "eidas2"),
            ("x", "café au lait"),
            ("empty", ""),
        ])
    );
    assert_eq!(req.session, "sess-1");
    let source = req.source.clone().unwrap();
    // X-Forwarded-For is not trusted by default: the peer is the source.
    assert_eq!(source.ip, "127.0.0.1");
    assert_eq!(source.port, u32::from(port));
    assert_eq!(source.request_id, request_id);
    assert_eq!(source.user_agent, "test-agent/1.0");
    assert_eq!(source.accept_language, "en-GB,fr;q=0.5");
}

#[tokio::test]
async fn each_request_gets_its_own_request_id() {
    let gw = support::start(|_| {}).await;
    gw.fake.answer_flow(redirect("https://sp.example/"));
    let http = support::http();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = http.get(gw.url("/authorize")).send().await.unwrap();
        ids.push(r.headers()["x-request-id"].to_str().unwrap().to_string());
    }
    assert_ne!(ids[0], ids[1]);
    let sent: Vec<String> = gw
        .fake
        .calls()
        .into_iter()
        .map(|c| match c {
            Call::Authorize(r) => r.source.unwrap().request_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sent, ids);
}

/// The source oidc-front received for one `/authorize` sent with `headers`.
async fn source_behind(gw: &support::Harness, headers: &[(&str, &str)]) -> (String, u32) {
    gw.fake.answer_flow(redirect("https://sp.example/"));
    let mut request = support::http().get(gw.url("/authorize?a=1"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap();
    let calls = gw.fake.calls();
    let Some(Call::Authorize(req)) = calls.last() else {
        panic!("{calls:?}")
    };
    let source = req.source.clone().unwrap();
    (source.ip, source.port)
}

#[tokio::test]
async fn forwarded_for_gives_the_rightmost_untrusted_hop_behind_a_trusted_peer() {
    let gw = support::start(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    // The client wrote the first hop itself; the proxy appended the address it saw.
    let spoofed = [("x-forwarded-for", "6.6.6.6:1, 203.0.113.9:50123")];
    assert_eq!(
        source_behind(&gw, &spoofed).await,
        ("203.0.113.9".into(), 50123)
    );
    let (ip, _) = source_behind(&gw, &[("x-forwarded-for", "6.6.6.6, 2001:db8::9")]).await;
    assert_eq!(ip, "2001:db8::9");
    // A hop that is not an address: the proxy itself, not what the client wrote.
    let (ip, _) = source_behind(&gw, &[("x-forwarded-for", "6.6.6.6, unknown")]).await;
    assert_eq!(ip, "127.0.0.1");

    // Behind a peer that is not trusted, the header is the client's own text.
    let gw = support::start(|c| c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let (ip, _) = source_behind(&gw, &spoofed).await;
    assert_eq!(ip, "127.0.0.1");
}

#[tokio::test]
async fn the_forwarded_header_gives_the_port_when_chosen() {
    let gw = support::start(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.forwarded_header = relais_gateway::ForwardedHeader::Forwarded;
    })
    .await;
    let headers = [
        (
            "forwarded",
            r#"for=6.6.6.6, for="[2001:db8::9]:4711";proto=https"#,
        ),
        ("x-forwarded-for", "6.6.6.6"),
    ];
    assert_eq!(
        source_behind(&gw, &headers).await,
        ("2001:db8::9".into(), 4711)
    );
}

#[tokio::test]
async fn authorize_post_sends_the_form_in_order() {
    let gw = support::start(|_| {}).await;
    gw.fake.answer_flow(redirect("https://sp.example/"));
    let r = support::http()
        .post(gw.url("/authorize?ignored=1"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("response_type=code&claims=%7B%22id_token%22%3A%7B%7D%7D&response_type=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let calls = gw.fake.calls();
    let [Call::Authorize(req)] = calls.as_slice() else {
        panic!("{calls:?}")
    };
    assert_eq!(
        req.params,
        params(&[
            ("response_type", "code"),
            ("claims", r#"{"id_token":{}}"#),
            ("response_type", "x"),
        ])
    );
}

#[tokio::test]
async fn chooser_post_sends_csrf_idp_and_the_flow_cookie() {
    let gw = support::start(|_| {}).await;
    gw.fake
        .answer_flow(redirect("https://idp.example/authorize"));
    let r = support::http()
        .post(gw.url("/chooser"))
        .header("cookie", "relais_flow=flow-42")
        .form(&[("csrf", "c-1"), ("idp", "idp-a")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "https://idp.example/authorize");
    let calls = gw.fake.calls();
    let [Call::ChooseIdp(req)] = calls.as_slice() else {
        panic!("{calls:?}")
    };
    assert_eq!(
        (req.flow.as_str(), req.csrf.as_str(), req.idp_id.as_str()),
        ("flow-42", "c-1", "idp-a")
    );
    assert!(req.source.is_some());
}

/// "Choose another account": the chooser shown again from the browser's flow cookie.
#[tokio::test]
async fn the_chooser_is_shown_again_from_the_flow_cookie() {
    let gw = support::start(|_| {}).await;
    gw.fake
        .answer_flow(redirect("https://idp.example/authorize"));
    let r = support::http()
        .get(gw.url("/chooser"))
        .header("cookie", "relais_flow=flow-43")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let calls = gw.fake.calls();
    let [Call::ShowChooser(req)] = calls.as_slice() else {
        panic!("{calls:?}")
    };
    assert_eq!(req.flow, "flow-43");
    assert!(req.source.is_some());
}

#[tokio::test]
async fn callbacks_and_logout_carry_their_cookie_and_params() {
    let gw = support::start(|_| {}).await;
    gw.fake.answer_flow(redirect("https://sp.example/"));
    let http = support::http();
    let cookies = "relais_flow=flow-1; relais_session=sess-1";
    for path in [
        "/idp/callback?code=c&state=s",
        "/end_session?id_token_hint=h&state=s",
        "/idp/logout-callback?state=s",
    ] {
        let r = http
            .get(gw.url(path))
            .header("cookie", cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{path}");
    }
    let calls = gw.fake.calls();
    let [
        Call::IdpCallback(cb),
        Call::EndSession(end),
        Call::LogoutCallback(out),
    ] = calls.as_slice()
    else {
        panic!("{calls:?}")
    };
    assert_eq!(cb.flow, "flow-1");
    assert_eq!(cb.params, params(&[("code", "c"), ("state", "s")]));
    assert_eq!(end.session, "sess-1");
    assert_eq!(
        end.params,
        params(&[("id_token_hint", "h"), ("state", "s")])
    );
    assert_eq!(out.session, "sess-1");
    assert_eq!(out.params, params(&[("state", "s")]));
    assert!(cb.source.is_some() && end.source.is_some() && out.source.is_some());
}

/// The confirmation form reaches oidc-front with its token, the answer and the browser's
/// session cookie.
#[tokio::test]
async fn the_logout_confirmation_posts_its_token_answer_and_session() {
    let gw = support::start(|_| {}).await;
    gw.fake.answer_flow(redirect("https://sp.example/out"));
    let http = support::http();
    for answer in ["sign_out", "stay"] {
        let r = http
            .post(gw.url("/end_session/confirm"))
            .header("cookie", "relais_session=sess-9")
            .form(&[("token", "tok-1"), ("answer", answer)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{answer}");
    }
    let calls = gw.fake.calls();
    let [Call::ConfirmEndSession(out), Call::ConfirmEndSession(stay)] = calls.as_slice() else {
        panic!("{calls:?}")
    };
    assert_eq!(out.token, "tok-1");
    assert_eq!(out.session, "sess-9");
    assert!(!out.stay);
    assert!(stay.stay);
    assert!(out.source.is_some());
}

#[tokio::test]
async fn cookies_are_set_and_removed_with_their_attributes() {
    let gw = support::start(|_| {}).await;
    gw.fake.answer_flow(FlowResponse {
        flow_cookie: Some(CookieUpdate {
            value: "f-1".into(),
            remove: false,
            max_age_seconds: 600,
        }),
        session_cookie: Some(CookieUpdate {
            value: String::new(),
            remove: true,
            max_age_seconds: 0,
        }),
        ..redirect("https://sp.example/")
    });
    let r = support::http()
        .get(gw.url("/authorize"))
        .send()
        .await
        .unwrap();
    let cookies: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        cookies,
        vec![
            "relais_flow=f-1; Max-Age=600; Path=/; HttpOnly; SameSite=Lax",
            "relais_session=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; HttpOnly; SameSite=Lax",
        ]
    );
    assert!(!r.headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn https_public_url_makes_cookies_secure_and_sets_hsts() {
    let gw = support::start(|c| c.public_url = "https://relais.example".into()).await;
    gw.fake.answer_flow(FlowResponse {
        session_cookie: Some(CookieUpdate {
            value: "s-9".into(),
            remove: false,
            max_age_seconds: 3600,
        }),
        ..redirect("https://sp.example/")
    });
    let r = support::http()
        .get(gw.url("/authorize"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["set-cookie"],
        "__Host-relais_session=s-9; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax; Secure"
    );
    assert_eq!(r.headers()["strict-transport-security"], "max-age=63072000");
}

/// Over https only the `__Host-` cookies are read: a bare-named one, which a sibling
/// subdomain or a plain-http page could have planted (session fixation), is ignored.
#[tokio::test]
async fn over_https_a_cookie_without_the_host_prefix_is_not_read() {
    let gw = support::start(|c| c.public_url = "https://relais.example".into()).await;
    gw.fake.answer_flow(redirect("https://sp.example/"));
    let http = support::http();
    for cookies in [
        "relais_flow=planted; relais_session=planted",
        "__Host-relais_flow=flow-1; __Host-relais_session=sess-1; relais_session=planted",
    ] {
        http.get(gw.url("/idp/callback?code=c&state=s"))
            .header("cookie", cookies)
            .send()
            .await
            .unwrap();
        http.get(gw.url("/end_session?state=s"))
            .header("cookie", cookies)
            .send()
            .await
            .unwrap();
    }
    let calls = gw.fake.calls();
    let [
        Call::IdpCallback(planted_cb),
        Call::EndSession(planted_end),
        Call::IdpCallback(cb),
        Call::EndSession(end),
    ] = calls.as_slice()
    else {
        panic!("{calls:?}")
    };
    assert_eq!(planted_cb.flow, "");
    assert_eq!(planted_end.session, "");
    assert_eq!(cb.flow, "flow-1");
    assert_eq!(end.session, "sess-1");
}

#[tokio::test]
async fn a_cookie_value_that_could_inject_attributes_is_not_sent() {
    let gw = support::start(|_| {}).await;
    gw.fake.answer_flow(FlowResponse {
        flow_cookie: Some(CookieUpdate {
            value: "x; Domain=evil.example".into(),
            remove: false,
            max_age_seconds: 60,
        }),
        ..redirect("https://sp.example/")
    });
    let r = support::http()
        .get(gw.url("/authorize"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(!r.headers().contains_key("set-cookie"));
    assert!(r.text().await.unwrap().contains("service_unavailable"));
}
