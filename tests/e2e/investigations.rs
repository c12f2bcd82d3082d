//! The investigation API over HTTP: a registry investigator signs in to the console
//! through Relais, its access token opens the API, trace checks who it is and records
//! each lookup (with that person as who looked) before answering; nobody else gets in.

use relais::Service;
use relais_proto::trace::v1 as trace;
use relais_proto::trace::v1::trace_client::TraceClient;
use relais_runtime::{LocalServices, Role};
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::*;

const KARIM: &str = "karim.benali@demo-idp.test";
/// Karim (eidas2 at the demo IdP) is an investigator in these stacks.
const INVESTIGATOR: &str = r#"
[[people]]
email = "karim.benali@demo-idp.test"
name = "Karim Benali"
role = "investigator"
idp = "demo-idp"
"#;

/// Signs `identity` in to `client`; the access token.
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

async fn get(
    stack: &Stack,
    path_and_query: &str,
    token: Option<&str>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut request = reqwest::Client::new().get(format!(
        "{}/api/investigations/v1{path_and_query}",
        stack.hub
    ));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    assert_eq!(
        headers["content-type"], "application/json",
        "{path_and_query}"
    );
    (status, r.json().await.unwrap(), headers)
}

/// A connection of SP A's, once the proof store holds its account.
async fn connection_at_a(stack: &Stack) -> trace::Connection {
    for _ in 0..200 {
        let listed = stack
            .trace
            .clone()
            .list_connections(trace::ListConnectionsRequest {
                sp_id: SP_A.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if let Some(c) = listed
            .connections
            .into_iter()
            .find(|c| !c.account_id.is_empty())
        {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no connection of SP A reached the proof store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_investigator_looks_connections_up_and_each_lookup_is_recorded_first() {
    let stack = Stack::start_with(Options {
        extra_people: INVESTIGATOR,
        ..Options::default()
    })
    .await;
    // Jean signs in to SP A: the connection an investigation looks for.
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    sign_in(&stack, &browser, &req, "jean").await.at_sp();
    let jean_at_a = connection_at_a(&stack).await;

    let karim = access_token(&stack, CONSOLE, "karim").await;
    let jean = access_token(&stack, CONSOLE, "jean").await;
    let staff = access_token(&stack, CONSOLE, "marie-helene").await;
    let not_console = access_token(&stack, SP_A, "karim").await;
    let by_account = format!(
        "/connections?case=TICKET-9&reason=requisition&account_id={}",
        jean_at_a.account_id
    );

    // Nobody else: no token, another client's token, a contact, support staff.
    let (status, error, headers) = get(&stack, &by_account, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");
    assert_eq!(error["error"], "invalid_token");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer realm=\"relais-investigations\"")
    );
    let (status, error, _) = get(&stack, &by_account, Some(&not_console)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");
    assert_eq!(error["error"], "invalid_token");
    for (who, token) in [("a contact", &jean), ("support staff", &staff)] {
        let (status, error, _) = get(&stack, &by_account, Some(token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who}: {error}");
        assert_eq!(error["error"], "forbidden", "{who}");
    }
    // An investigator too needs a case, and one selection.
    let (status, error, _) = get(
        &stack,
        &format!("/connections?account_id={}", jean_at_a.account_id),
        Some(&karim),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"], "invalid_case");
    let (status, error, _) = get(
        &stack,
        "/connections?case=T&account_id=a&source_ip=127.0.0.1",
        Some(&karim),
    )
    .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_selection"))
    );
    let (status, error, _) = get(&stack, "/connections?case=T&source_ip=::1::", Some(&karim)).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_selection"))
    );
    let (status, error, _) = get(
        &stack,
        "/connections?case=T&source_ip=127.0.0.1&page_token=forged",
        Some(&karim),
    )
    .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_page_token"))
    );
    // The gateway's own identity looks nothing up: over gRPC it needs a live token too.
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
    for forged in ["", "not-a-token", not_console.as_str()] {
        let status = TraceClient::new(as_gateway.clone())
            .search_connections(trace::SearchConnectionsRequest {
                case: "TICKET-9".into(),
                selection: Some(trace::search_connections_request::Selection::SourceIp(
                    "127.0.0.1".into(),
                )),
                access_token: forged.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{forged}");
        assert_eq!(relais_runtime::error_code(&status), Some("invalid_token"));
    }
    assert!(
        stack.proof_events("trace.lookup").await.is_empty(),
        "refusals look nothing up"
    );

    // Karim looks: by account, by SUB FS at SP A, by address a page at a time, by id.
    let (status, page, headers) = get(&stack, &by_account, Some(&karim)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(headers["cache-control"], "no-store");
    // Jean's account is the hub's: his sign-in at SP A, and at the console once the
    // proof store has it (newest first).
    let found = page["connections"].as_array().unwrap();
    assert!(
        found
            .iter()
            .all(|c| c["account_id"] == jean_at_a.account_id.as_str())
    );
    let at_a = found.last().unwrap();
    assert_eq!(
        at_a["connection_id"],
        jean_at_a.connection_id.as_str(),
        "{page}"
    );
    assert_eq!(at_a["sp_id"], SP_A);
    assert_eq!(at_a["source_ip"], "127.0.0.1");
    let (status, page, _) = get(
        &stack,
        &format!(
            "/connections?case=TICKET-9&sp_id={SP_A}&sub_fs={}",
            jean_at_a.sub_fs
        ),
        Some(&karim),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        page["connections"][0]["connection_id"],
        jean_at_a.connection_id.as_str()
    );
    // Every sign-in of this stack came from 127.0.0.1: Jean's at SP A, and four consoles'.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let (status, page, _) = get(
            &stack,
            &format!(
                "/connections?case=TICKET-9&source_ip=127.0.0.1&page_size=2&page_token={token}"
            ),
            Some(&karim),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for c in page["connections"].as_array().unwrap() {
            seen.push(c["connection_id"].as_str().unwrap().to_owned());
        }
        match page["next_page_token"].as_str() {
            Some(next) => token = next.to_owned(),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no connection twice: {seen:?}");
    assert!(seen.len() >= 5, "{seen:?}");
    assert!(seen.contains(&jean_at_a.connection_id));
    let pages = seen.len().div_ceil(2);
    let (status, one, _) = get(
        &stack,
        &format!("/connections/{}?case=TICKET-9", jean_at_a.connection_id),
        Some(&karim),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert!(!one["connection"]["steps"].as_array().unwrap().is_empty());
    let (status, miss, _) = get(&stack, "/connections/no-such?case=TICKET-9", Some(&karim)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{miss}");

    // Each is in the proof store with Karim as who looked, through the gateway.
    let lookups = stack.proof_events("trace.lookup").await;
    assert_eq!(lookups.len(), 2 + pages + 2, "{lookups:#?}");
    for l in &lookups {
        assert_eq!(l["operator"], KARIM, "{l}");
        assert_eq!(l["via"], "gateway.relais.internal", "{l}");
        assert_eq!(l["case"], "TICKET-9", "{l}");
        assert_eq!(l["source_ip"], "127.0.0.1", "{l}");
    }
    assert_eq!(lookups[0]["reason"], "requisition");
    assert_eq!(lookups[0]["returned"], found.len());
    assert_eq!(
        lookups[0]["selection"]["values"]["account_id"],
        jean_at_a.account_id.as_str()
    );
    assert!(page["lookup_event_id"].is_string());
    assert_eq!(
        lookups.last().unwrap()["returned"],
        0,
        "a miss is a lookup too"
    );

    // An operator looks with its certificate, recorded as itself.
    let r = stack
        .trace
        .clone()
        .search_connections(trace::SearchConnectionsRequest {
            case: "TICKET-9".into(),
            selection: Some(trace::search_connections_request::Selection::ConnectionId(
                jean_at_a.connection_id.clone(),
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.connections.len(), 1);
    let last = stack.proof_events("trace.lookup").await.pop().unwrap();
    assert_eq!(last["operator"], "e2e.operator.relais.internal");
    assert_eq!(last["via"], Value::Null);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_investigator_signed_in_too_weakly_is_told_the_levels_and_looks_nothing_up() {
    let stack = Stack::start_with(Options {
        extra_people: INVESTIGATOR,
        tweak: |c| c.trace.investigator_acr_values = vec!["eidas3".into()],
        ..Options::default()
    })
    .await;
    let karim = access_token(&stack, CONSOLE, "karim").await;
    let (status, error, headers) = get(
        &stack,
        "/connections?case=TICKET-9&source_ip=127.0.0.1",
        Some(&karim),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");
    assert_eq!(error["error"], "insufficient_user_authentication");
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_user_authentication\"")
            && challenge.contains("acr_values=\"eidas3\""),
        "{challenge}"
    );
    assert!(stack.proof_events("trace.lookup").await.is_empty());
    // Refused before the enrolment: nothing bound to the weak sign-in.
    let bound = stack
        .sql(
            "registry",
            "SELECT coalesce(idp_sub, '') FROM people WHERE email = 'karim.benali@demo-idp.test'",
        )
        .await;
    assert_eq!(bound[0].get::<_, String>(0), "");

    // The document: valid JSON listing both routes.
    let r = reqwest::get(format!("{}/api/investigations/v1/openapi.json", stack.hub))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.")),
        Some(true)
    );
    for path in ["/connections", "/connections/{id}"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path}: {doc}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let (status, error, _) = get(&stack, "/nothing-here", None).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    stack.stop().await;
}
