//! The broker away for a while: sign-ins go on, every trace arrives once.

use reqwest::StatusCode;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_loses_and_doubles_nothing() {
    let stack = Stack::start_with(Options {
        proxied_bus: true,
        ..Options::default()
    })
    .await;
    let hub = stack.hub.clone();
    let proxy = stack.proxy.as_ref().unwrap();
    proxy.cut();
    let mut subs = Vec::new();
    for identity in ["camille", "jean", "karim"] {
        let browser = Browser::new();
        let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
        let back = sign_in(&stack, &browser, &req, identity).await.at_sp();
        let code = req.code(&back);
        let (status, t) = token(&hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
        assert_eq!(status, StatusCode::OK, "{t}");
        let claims = verify_id_token(&hub, t["id_token"].as_str().unwrap(), SP_A).await;
        subs.push(claims["sub"].as_str().unwrap().to_string());
    }
    // Nothing can have reached the trace store while the link was cut.
    let seen = stack
        .trace
        .clone()
        .list_connections(relais_proto::trace::v1::ListConnectionsRequest {
            sp_id: SP_A.into(),
            sub_fs: String::new(),
            account_id: String::new(),
            limit: 100,
        })
        .await
        .unwrap()
        .into_inner()
        .connections;
    assert!(seen.is_empty(), "events crossed a cut link: {seen:?}");
    proxy.restore();
    let wanted = [
        "authorize_initiated",
        "idp_redirected",
        "identity_verified",
        "code_issued",
        "token_issued",
    ];
    for sub in &subs {
        let conns = stack
            .connections_until(SP_A, sub, |c| c.len() == 1 && c[0].outcome == "succeeded")
            .await;
        // Each service's relay reconnects on its own backoff: wait for every step.
        let mut c = stack.connection(&conns[0].connection_id).await;
        for _ in 0..300 {
            if wanted.iter().all(|k| c.steps.iter().any(|s| s.kind == *k)) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            c = stack.connection(&conns[0].connection_id).await;
        }
        let mut ids: Vec<&str> = c.steps.iter().map(|s| s.event_id.as_str()).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "a step was stored twice");
        let kinds: Vec<&str> = c.steps.iter().map(|s| s.kind.as_str()).collect();
        for k in wanted {
            assert_eq!(
                kinds.iter().filter(|x| **x == k).count(),
                1,
                "{k} in {kinds:?}"
            );
        }
    }
    stack.stop().await;
}
