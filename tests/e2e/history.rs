//! A person's own connection history at `/account`: the hub's own SP signs them in
//! through the hub like any SP; the page lists their connections, newest first, through
//! trace, which checks the person's token and records the view before answering. Nobody
//! sees anyone else's history, and nothing but the person's own sign-in opens the page.

use relais::Service;
use relais_proto::trace::v1 as trace;
use relais_proto::trace::v1::trace_client::TraceClient;
use relais_runtime::{LocalServices, Role};
use reqwest::StatusCode;

use crate::harness::*;

const JEAN: &str = "jean";
const KARIM: &str = "karim";

/// Opens `/account` in `browser` and signs in there as `identity`: the history page.
async fn history_page(stack: &Stack, browser: &Browser, identity: &str) -> String {
    let (status, chooser) = browser.get(&format!("{}/account", stack.hub)).await.page();
    assert_eq!(
        status,
        StatusCode::OK,
        "the chooser of the account page: {chooser}"
    );
    let (status, login) = browser
        .choose(&stack.hub, &chooser, "demo-idp")
        .await
        .page();
    assert_eq!(status, StatusCode::OK, "IdP login page: {login}");
    let scenario = stack.idp.scenario().scenario.as_str().to_string();
    let (status, page) = browser
        .login(stack.idp.issuer(), &login, identity, &scenario)
        .await
        .page();
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

/// The first connection at SP A that trace holds with its account.
async fn connection_at_a(stack: &Stack) -> trace::Connection {
    let found = stack
        .connections_until(SP_A, "", |c| c.iter().any(|c| !c.account_id.is_empty()))
        .await;
    found
        .into_iter()
        .find(|c| !c.account_id.is_empty())
        .unwrap()
}

fn no_follow() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sees_only_their_own_connections_and_each_view_is_recorded() {
    let stack = Stack::start().await;
    // Jean signs in at SP A.
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    sign_in(&stack, &Browser::new(), &req, JEAN).await.at_sp();
    let at_a = connection_at_a(&stack).await;

    // Then opens his history: an ordinary sign-in of the hub's account page, then the page.
    let page = history_page(&stack, &Browser::new(), JEAN).await;
    assert!(page.contains("<caption>"), "{page}");
    assert!(page.contains(r#"<th scope="col">"#), "{page}");
    assert!(page.contains(&format!("<td>{SP_A}</td>")), "{page}");
    assert!(page.contains("<td>demo-idp</td>"), "{page}");
    assert!(page.contains(&format!("<td>{}</td>", at_a.acr)), "{page}");
    assert!(!page.contains("<script"), "no JavaScript: {page}");

    // The view is a record of the log, for Jean's account.
    let views = stack.proof_events("trace.history_viewed").await;
    assert_eq!(views.len(), 1, "{views:#?}");
    assert_eq!(views[0]["account_id"], at_a.account_id.as_str());
    assert!(views[0]["returned"].as_u64().unwrap() >= 1, "{views:#?}");
    assert_eq!(views[0]["via"], "gateway.relais.internal");

    // Karim, another person, sees nothing of Jean's, in English when he asks for it.
    let browser = Browser {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(
                [(
                    reqwest::header::ACCEPT_LANGUAGE,
                    reqwest::header::HeaderValue::from_static("en"),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .unwrap(),
    };
    let page = history_page(&stack, &browser, KARIM).await;
    assert!(page.contains("My connection history"), "{page}");
    assert!(!page.contains(&format!("<td>{SP_A}</td>")), "{page}");
    let views = stack.proof_events("trace.history_viewed").await;
    assert_eq!(views.len(), 2, "{views:#?}");
    assert_ne!(views[1]["account_id"], at_a.account_id.as_str());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_own_sign_in_the_page_shows_nothing() {
    let stack = Stack::start().await;
    let http = no_follow();
    // No page session: the sign-in of the account page's SP, with state, nonce and PKCE.
    let r = http
        .get(format!("{}/account", stack.hub))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = url::Url::parse(&stack.hub)
        .unwrap()
        .join(r.headers()["location"].to_str().unwrap())
        .unwrap();
    assert_eq!(location.path(), "/authorize");
    assert_eq!(query(&location, "client_id").as_deref(), Some(ACCOUNT));
    assert_eq!(
        query(&location, "redirect_uri"),
        Some(format!("{}/account/callback", stack.hub))
    );
    assert_eq!(
        query(&location, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(query(&location, "state").is_some() && query(&location, "nonce").is_some());

    // A forged page cookie: the same sign-in, no history.
    let r = http
        .get(format!("{}/account", stack.hub))
        .header("cookie", "relais_account=forged.value")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/authorize?")
    );

    // A callback without the sign-in it answers (a code planted from elsewhere): refused.
    let r = http
        .get(format!("{}/account/callback?code=abc&state=xyz", stack.hub))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("account_sign_in_failed"));

    // A callback whose state is not the browser's own sign-in's: refused.
    let browser = Browser::new();
    let r = browser
        .http
        .get(format!("{}/account", stack.hub))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let started = url::Url::parse(&stack.hub)
        .unwrap()
        .join(r.headers()["location"].to_str().unwrap())
        .unwrap();
    let state = query(&started, "state").unwrap();
    let r = browser
        .http
        .get(format!(
            "{}/account/callback?code=abc&state=other",
            stack.hub
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Its own state, but a code the hub never issued (with or without another issuer's
    // `iss`): refused, and no page session is set.
    for callback in [
        format!("code=abc&state={state}&iss=https%3A%2F%2Fevil.example"),
        format!("code=abc&state={state}"),
    ] {
        let r = browser
            .http
            .get(format!("{}/account/callback?{callback}", stack.hub))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{callback}");
        assert!(r.headers().get("set-cookie").is_none(), "{callback}");
        assert!(
            r.text().await.unwrap().contains("account_sign_in_failed"),
            "{callback}"
        );
    }

    // Trace: the gateway's identity with no token, or a token of another SP, sees nothing.
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let code = code_of_sign_in(&stack, &Browser::new(), &req, JEAN).await;
    let (status, t) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let sp_token = t["access_token"].as_str().unwrap().to_owned();
    let addr = stack
        .grpc_addrs
        .iter()
        .find(|(s, _)| *s == Service::Trace)
        .unwrap()
        .1;
    let as_gateway = LocalServices::new(&stack.grpc)
        .for_service(Role::Gateway)
        .channel(Role::Trace, &relais_runtime::grpc_url(addr))
        .unwrap();
    for forged in ["", "not-a-token", sp_token.as_str()] {
        let status = TraceClient::new(as_gateway.clone())
            .my_connections(trace::MyConnectionsRequest {
                access_token: forged.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{forged}");
        assert_eq!(
            status.metadata().get("relais-error-code").unwrap(),
            "invalid_token"
        );
    }
    // An operator does not read a person's history as that person: not in its table.
    let status = stack
        .trace
        .clone()
        .my_connections(trace::MyConnectionsRequest {
            access_token: sp_token,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(stack.proof_events("trace.history_viewed").await.is_empty());
    stack.stop().await;
}
