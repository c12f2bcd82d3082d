//! `POST /admin/scenario` from the loopback interface.

use relais_demo_idp::Scenario;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::support::TestIdp;

#[tokio::test]
async fn admin_sets_the_global_scenario_and_delay() {
    let idp = TestIdp::start().await;
    let response = idp
        .http
        .post(idp.url("/admin/scenario"))
        .json(&json!({ "scenario": "wrong_nonce", "delay_ms": 250 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let setting = idp.handle.scenario();
    assert_eq!(setting.scenario, Scenario::WrongNonce);
    assert_eq!(setting.delay_ms, 250);
    let read: Value = idp
        .http
        .get(idp.url("/admin/scenario"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read, json!({ "scenario": "wrong_nonce", "delay_ms": 250 }));

    let login = idp.login("jean", None, &[]).await;
    let tokens: Value = idp
        .token(&login.code, Some(&login.verifier))
        .await
        .json()
        .await
        .unwrap();
    let claims = idp
        .verify(tokens["id_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_ne!(claims["nonce"], login.nonce);
}

#[tokio::test]
async fn admin_refuses_unknown_scenarios() {
    let idp = TestIdp::start().await;
    let response = idp
        .http
        .post(idp.url("/admin/scenario"))
        .json(&json!({ "scenario": "meltdown" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(idp.handle.scenario().scenario, Scenario::None);
}
