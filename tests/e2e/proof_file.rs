//! A case's proof file: exported by an operator's command from a running hub, then checked
//! by `relais trace verify` with nothing but the file and the log's verifier key.

use reqwest::StatusCode;

use crate::harness::*;

/// `relais trace verify …` with no configuration, database or network at hand.
async fn verify_offline(file: &std::path::Path, key: &str) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(["trace", "verify", "--file"])
        .arg(file)
        .args(["--key", key])
        .env_clear()
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_case_verifies_offline_with_the_logs_verifier_key() {
    let stack = Stack::start().await;
    let hub = stack.hub.clone();
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid given_name");
    let code = code_of_sign_in(&stack, &browser, &req, "jean").await;
    let (status, tokens) = token(&hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify_id_token(&hub, tokens["id_token"].as_str().unwrap(), SP_A).await;
    let sub = claims["sub"].as_str().unwrap().to_string();
    stack
        .connections_until(SP_A, &sub, |c| c.len() == 1 && c[0].outcome == "succeeded")
        .await;

    let dir = std::env::temp_dir().join(format!("relais-case-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("case.json");
    let selection = format!("sub-fs:{SP_A}:{sub}");
    // No case reference, no export.
    let (ok, out) = stack
        .admin(&["export-case", &selection, "--out", file.to_str().unwrap()])
        .await;
    assert!(!ok, "{out}");
    let (ok, out) = stack
        .admin(&[
            "export-case",
            "TICKET-E2E-1",
            &selection,
            "--reason",
            "identity theft reported",
            "--out",
            file.to_str().unwrap(),
        ])
        .await;
    assert!(ok, "{out}");
    assert!(out.contains("of 1 connections"), "{out}");

    // The log's verifier key, as the trace service publishes it with its checkpoints; on
    // loopback the development key's.
    let vkey = stack
        .trace
        .clone()
        .get_checkpoint(relais_proto::trace::v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
        .verifier_key;
    let dev = relais_trace::TraceConfig::default().key().unwrap();
    assert_eq!(vkey, dev.verifier_key());
    let published = reqwest::get(format!("{hub}/.well-known/relais-checkpoint"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    relais_trace::checkpoint::open(&published, &vkey, dev.origin()).unwrap();

    let (code, out) = verify_offline(&file, &vkey).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("verified") && out.contains("case: TICKET-E2E-1"),
        "{out}"
    );

    // The export is itself a record of the log: who (the operator's certificate), what, why.
    let exports = stack.proof_events("trace.case_exported").await;
    assert_eq!(exports.len(), 1, "{exports:?}");
    assert_eq!(
        exports[0]["selection"],
        format!("sub_fs={sub} at sp {SP_A}")
    );
    assert_eq!(exports[0]["case"], "TICKET-E2E-1");
    assert_eq!(exports[0]["reason"], "identity theft reported");
    let operator = exports[0]["operator"].as_str().unwrap();
    assert!(operator.contains(".operator."), "{operator}");

    // Extended with a consistency proof to a later checkpoint (another export grew the log).
    let (ok, out) = stack
        .admin(&[
            "export-case",
            "TICKET-E2E-2",
            "account:nobody",
            "--out",
            dir.join("other.json").to_str().unwrap(),
        ])
        .await;
    assert!(ok, "{out}");
    let extended = dir.join("extended.json");
    let (ok, out) = stack
        .admin(&[
            "extend-case",
            file.to_str().unwrap(),
            "--out",
            extended.to_str().unwrap(),
        ])
        .await;
    assert!(ok, "{out}");
    let (code, out) = verify_offline(&extended, &vkey).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("extended by the signed tree"), "{out}");

    // An altered body is named, and the command fails.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let body = json["records"][0]["body"]
        .as_str()
        .unwrap()
        .replace(SP_A, SP_B);
    json["records"][0]["body"] = body.into();
    let altered = dir.join("altered.json");
    std::fs::write(&altered, json.to_string()).unwrap();
    let (code, out) = verify_offline(&altered, &vkey).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("record 1 of the file"), "{out}");
    // Another key: refused too.
    let (_, other) = relais_trace::checkpoint::generate_key(dev.origin()).unwrap();
    let (code, out) = verify_offline(&file, &other).await;
    assert_eq!(code, Some(1), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
    stack.stop().await;
}
