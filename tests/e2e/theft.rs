//! Identity theft (terms §7, REQUIREMENTS "Identity theft"): `relais admin suspend-account`
//! suspends the account at every SP at once (sessions ended with a back-channel logout,
//! tokens revoked, sign-ins refused with a page and the way back), writes the case's proof
//! file, opens its support ticket; lifting the suspension lets the person in again. Both
//! are records of the proof store with the operator's name.

use std::time::Duration;

use relais_proto::support::v1 as support;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::*;

const OPERATOR: &str = "e2e.operator.relais.internal";

fn with_sso() -> Options {
    Options {
        tweak: |c| c.oidc_front.sso_enabled = true,
        ..Options::default()
    }
}

/// `kind` records of the proof store, once there are `n`.
async fn proof_records(stack: &Stack, kind: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let got = stack.proof_events(kind).await;
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fewer than {n} {kind} records in the proof store");
}

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
async fn one_operator_call_suspends_an_account_everywhere_with_its_proof_file_and_ticket() {
    let stack = Stack::start_with(with_sso()).await;
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let code = code_of_sign_in(&stack, &browser, &req, "jean").await;
    let (status, tokens) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let claims = verify_id_token(&stack.hub, tokens["id_token"].as_str().unwrap(), SP_A).await;
    let sub = claims["sub"].as_str().unwrap().to_string();
    assert_eq!(userinfo(&stack.hub, &access).await.0, StatusCode::OK);

    let dir = std::env::temp_dir().join(format!("relais-theft-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("case.json");
    let file_arg = file.to_str().unwrap();

    // Without a case, refused, and nothing changes.
    let (ok, out) = stack
        .admin(&[
            "suspend-account",
            "--sp",
            SP_A,
            "--sub-fs",
            &sub,
            "--reason",
            "theft",
            "--proof-file",
            file_arg,
        ])
        .await;
    assert!(!ok, "{out}");
    assert_eq!(userinfo(&stack.hub, &access).await.0, StatusCode::OK);

    // The SP reported it: the account named by the subject the SP knows.
    let (ok, out) = stack
        .admin(&[
            "suspend-account",
            "--sp",
            SP_A,
            "--sub-fs",
            &sub,
            "--case",
            "CASE-THEFT-1",
            "--reason",
            "identity theft reported by the SP",
            "--proof-file",
            file_arg,
        ])
        .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("1 sessions ended, 1 access tokens revoked"),
        "{out}"
    );

    // The token given before is refused.
    assert_eq!(
        userinfo(&stack.hub, &access).await.0,
        StatusCode::UNAUTHORIZED
    );
    // The SP with a back-channel endpoint hears the session ended.
    let told = stack.logouts.wait_for(1).await;
    assert_eq!(told[0].0, "a");
    let logout = verify_hub_jwt(&stack.hub, &told[0].1, SP_A, true).await;
    assert_eq!(logout["sub"], sub.as_str());
    assert_eq!(logout["sid"], claims["sid"]);

    // The session no longer signs in anywhere: no single sign-on, prompt=none refused.
    let (status, page) = browser.get(&req.url(&stack.hub)).await.page();
    assert_eq!(status, StatusCode::OK);
    assert!(
        input_value(&page, "csrf").is_some(),
        "not the chooser: {page}"
    );
    let silent = AuthRequest::new(SP_A, REDIRECT_A, "openid").with("prompt", "none");
    let back = browser.get(&silent.url(&stack.hub)).await.at_sp();
    assert_eq!(query(&back, "error").as_deref(), Some("login_required"));
    assert!(query(&back, "code").is_none());

    // A new sign-in through the IdP ends on the page with the way back to the SP.
    let fresh = Browser::new();
    let attempt = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let (status, page) = sign_in(&stack, &fresh, &attempt, "jean").await.page();
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("account_suspended"), "{page}");
    let href = regex::Regex::new(r#"href="([^"]*error=access_denied[^"]*)""#)
        .unwrap()
        .captures(&page)
        .unwrap_or_else(|| panic!("no way back to the SP: {page}"))[1]
        .replace("&amp;", "&");
    let way_back = url::Url::parse(&href).unwrap();
    assert!(way_back.as_str().starts_with(REDIRECT_A), "{way_back}");
    assert!(
        query(&way_back, "error_description")
            .unwrap()
            .contains("account_suspended")
    );
    assert_eq!(query(&way_back, "state"), Some(attempt.state.clone()));
    assert!(query(&way_back, "iss").is_some());

    // The proof store holds the suspension with the operator's name.
    let suspended = proof_records(&stack, "account.suspended", 1).await;
    let record = &suspended[0];
    assert_eq!(record["operator"], OPERATOR, "{record}");
    assert_eq!(record["case"], "CASE-THEFT-1");
    assert_eq!(record["sessions_ended"], 1);
    assert_eq!(record["tokens_revoked"], 1);
    assert_eq!(record["logout_notices"], 1);
    let account = record["account_id"].as_str().unwrap().to_string();

    // The case's ticket exists in support, with the account and the file's checkpoint.
    let ticket_id = regex::Regex::new(r"support ticket (\S+) opened")
        .unwrap()
        .captures(&out)
        .unwrap_or_else(|| panic!("no ticket: {out}"))[1]
        .to_string();
    let ticket = stack
        .support
        .clone()
        .get_ticket(support::TicketRequest {
            caller: Some(support::Caller {
                who: Some(support::caller::Who::Staff(support::Staff {
                    role: "level3".into(),
                    name: "agent".into(),
                })),
            }),
            ticket_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ticket.scope, "one_user");
    assert_eq!(ticket.partner_id, SP_A);
    assert!(ticket.subject.contains("CASE-THEFT-1"), "{ticket:?}");
    let text = format!("{ticket:?}");
    assert!(text.contains(&account), "{text}");
    let proof = std::fs::read_to_string(&file).unwrap();
    let parsed: Value = serde_json::from_str(&proof).unwrap();
    let checkpoint_line = parsed["checkpoint"]
        .as_str()
        .unwrap()
        .lines()
        .nth(2)
        .unwrap()
        .to_string();
    assert!(text.contains(&checkpoint_line), "{text}");

    // The proof file verifies offline with the log's verifier key alone.
    let vkey = stack
        .trace
        .clone()
        .get_checkpoint(relais_proto::trace::v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
        .verifier_key;
    let (code, text) = verify_offline(&file, &vkey).await;
    assert_eq!(code, Some(0), "{text}");

    // Lifted, and recorded: the person signs in again.
    let (ok, out) = stack
        .admin(&[
            "lift-account-suspension",
            "--account",
            &account,
            "--case",
            "CASE-THEFT-1",
            "--reason",
            "identity secured again",
        ])
        .await;
    assert!(ok, "{out}");
    let lifted = proof_records(&stack, "account.suspension_lifted", 1).await;
    assert_eq!(lifted[0]["operator"], OPERATOR);
    assert_eq!(lifted[0]["account_id"], account.as_str());
    let again = code_of_sign_in(&stack, &Browser::new(), &req, "jean").await;
    let (status, tokens) = token(&stack.hub, SP_A, SECRET_A, &again, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    std::fs::remove_dir_all(&dir).ok();
    stack.stop().await;
}

/// Support away after the suspension: the account stays suspended (the safe state) and
/// the command says what is left and fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_that_cannot_be_opened_leaves_the_account_suspended_and_the_command_failing() {
    let stack = Stack::start().await;
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let code = code_of_sign_in(&stack, &Browser::new(), &req, "jean").await;
    let (status, tokens) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let account: uuid::Uuid = stack
        .sql("oidc_front", "SELECT id FROM oidc_front.accounts")
        .await[0]
        .get(0);
    let file = std::env::temp_dir().join(format!("relais-theft-{}.json", uuid::Uuid::new_v4()));
    let (ok, out) = stack
        .admin_with(
            &[
                "suspend-account",
                "--account",
                &account.to_string(),
                "--case",
                "CASE-THEFT-2",
                "--reason",
                "reported by the person",
                "--proof-file",
                file.to_str().unwrap(),
            ],
            &[("RELAIS__GATEWAY__SUPPORT_URL", "http://127.0.0.1:1")],
        )
        .await;
    assert!(!ok, "{out}");
    assert!(out.contains("STAYS SUSPENDED"), "{out}");
    assert!(out.contains("opening the support ticket failed"), "{out}");
    assert!(
        file.exists(),
        "the proof file was written before the ticket"
    );
    assert_eq!(
        userinfo(&stack.hub, &access).await.0,
        StatusCode::UNAUTHORIZED
    );
    proof_records(&stack, "account.suspended", 1).await;
    std::fs::remove_file(&file).ok();
    stack.stop().await;
}

/// The operator's command and a sign-in's return from the IdP at the same moment, several
/// times: whichever wins, the code the SP may get is refused and no session lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_racing_a_callback_never_lets_a_code_out() {
    let stack = Stack::start().await;
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    code_of_sign_in(&stack, &Browser::new(), &req, "jean").await;
    let account: uuid::Uuid = stack
        .sql("oidc_front", "SELECT id FROM oidc_front.accounts")
        .await[0]
        .get(0);
    let account = account.to_string();
    for round in 0..4 {
        let browser = Browser::new();
        let (_, chooser) = browser.get(&req.url(&stack.hub)).await.page();
        let (_, login) = browser
            .choose(&stack.hub, &chooser, "demo-idp")
            .await
            .page();
        let case = format!("CASE-RACE-{round}");
        let file = std::env::temp_dir().join(format!("relais-race-{}.json", uuid::Uuid::new_v4()));
        let args = [
            "suspend-account",
            "--account",
            &account,
            "--case",
            &case,
            "--reason",
            "race",
            "--proof-file",
            file.to_str().unwrap(),
        ];
        let (ending, (ok, out)) = tokio::join!(
            browser.login(stack.idp.issuer(), &login, "jean", "none"),
            stack.admin(&args)
        );
        assert!(ok, "{out}");
        if let Ending::AtSp(back) = ending
            && let Some(code) = query(&back, "code")
        {
            let code = Code {
                value: code,
                verifier: req.code_verifier.clone(),
            };
            let (status, body) = token(&stack.hub, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "a code got out: {body}");
        }
        let live: i64 = stack
            .sql(
                "oidc_front",
                "SELECT count(*) FROM oidc_front.sessions WHERE ended_at IS NULL",
            )
            .await[0]
            .get(0);
        assert_eq!(live, 0, "a session outlived the suspension");
        let (ok, out) = stack
            .admin(&[
                "lift-account-suspension",
                "--account",
                &account,
                "--case",
                &case,
                "--reason",
                "next round",
            ])
            .await;
        assert!(ok, "{out}");
        std::fs::remove_file(&file).ok();
    }
    stack.stop().await;
}
