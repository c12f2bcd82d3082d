//! Identity theft (terms §7): one operator call suspends an account at every SP; a
//! sign-in, a code and a token of it are refused from then on, also when the suspension
//! races the sign-in's own write; lifting it lets the person in again.

use crate::support::{Hub, REDIRECT, query, redirect_of};
use relais_proto::oidc_front::v1 as pb;
use uuid::Uuid;

/// A completed sign-in of "jean": its code.
async fn signed_in_code(hub: &Hub) -> String {
    let (at_idp, flow) = hub.choose(&hub.authorize(&[]).await).await;
    let answer = hub.at_idp(&at_idp, "jean").await;
    let done = hub.callback(&flow, &answer).await;
    query(&redirect_of(&done).unwrap())["code"].clone()
}

async fn the_account(hub: &Hub) -> Uuid {
    hub.sql
        .get()
        .await
        .unwrap()
        .query_one("SELECT id FROM accounts", &[])
        .await
        .unwrap()
        .get(0)
}

fn by_id(account: Uuid) -> pb::SuspendAccountRequest {
    pb::SuspendAccountRequest {
        account: Some(pb::suspend_account_request::Account::AccountId(
            account.to_string(),
        )),
        case: "CASE-42".into(),
        reason: "identity theft reported by the person".into(),
    }
}

fn lift(account: Uuid) -> pb::LiftAccountSuspensionRequest {
    pb::LiftAccountSuspensionRequest {
        account_id: account.to_string(),
        case: "CASE-42".into(),
        reason: "the person's identity is secured again".into(),
    }
}

fn error_code(s: &tonic::Status) -> String {
    s.metadata()
        .get("relais-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn live_sessions(hub: &Hub) -> i64 {
    hub.sql
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM sessions WHERE ended_at IS NULL", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_ends_the_sessions_tokens_and_codes_and_refuses_the_next_sign_in() {
    let hub = Hub::start().await;
    let redeemed = signed_in_code(&hub).await;
    let (status, tokens) = hub.token(&redeemed).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    assert_eq!(hub.userinfo(&access).await.0, 200);
    let unused = signed_in_code(&hub).await;
    let account = the_account(&hub).await;

    let done = hub
        .operator
        .clone()
        .suspend_account(by_id(account))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.account_id, account.to_string());
    assert_eq!(done.idp_id, "demo-idp");
    assert_eq!(
        (done.sessions_ended, done.tokens_revoked, done.codes_revoked),
        (2, 1, 1)
    );
    assert!(!done.suspended_at.is_empty());
    assert_eq!(live_sessions(&hub).await, 0);

    // The token already given is refused, and so is the code not yet redeemed.
    let (status, body) = hub.userinfo(&access).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = hub.token(&unused).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");

    // A new sign-in through the IdP ends on the page with the way back to the SP.
    let (sessions, grants) = (hub.rows("sessions").await, hub.rows("grants").await);
    let (at_idp, flow) = hub.choose(&hub.authorize(&[]).await).await;
    let answer = hub.at_idp(&at_idp, "jean").await;
    let page = hub.callback(&flow, &answer).await;
    let Some(pb::flow_response::Outcome::Error(e)) = &page.outcome else {
        panic!("not an error page: {page:?}");
    };
    assert_eq!(e.code, "account_suspended");
    assert_eq!(e.http_status, 403);
    let back = query(&e.back_url);
    assert!(e.back_url.starts_with(REDIRECT), "{}", e.back_url);
    assert_eq!(back["error"], "access_denied");
    assert!(back["error_description"].contains("account_suspended"));
    assert!(back.contains_key("state") && back.contains_key("iss"));
    assert!(!back.contains_key("code"));
    assert_eq!(
        hub.rows("sessions").await,
        sessions,
        "a session was written"
    );
    assert_eq!(hub.rows("grants").await, grants, "a code was written");

    // Suspending again changes nothing and says why.
    let again = hub
        .operator
        .clone()
        .suspend_account(by_id(account))
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    assert_eq!(error_code(&again), "account_already_suspended");

    // Lifted: the person signs in again.
    let lifted = hub
        .operator
        .clone()
        .lift_account_suspension(lift(account))
        .await
        .unwrap()
        .into_inner();
    assert!(lifted.suspended_at.is_empty());
    let code = signed_in_code(&hub).await;
    assert_eq!(hub.token(&code).await.0, 200);
    let twice = hub
        .operator
        .clone()
        .lift_account_suspension(lift(account))
        .await
        .unwrap_err();
    assert_eq!(error_code(&twice), "account_not_suspended");
    hub.stop().await;
}

/// The account is found by the subject an SP knows and by the IdP's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_is_named_by_its_idp_subject_or_its_sp_subject() {
    let hub = Hub::start().await;
    let code = signed_in_code(&hub).await;
    let account = the_account(&hub).await;
    let sub_fs: String = hub
        .sql
        .get()
        .await
        .unwrap()
        .query_one("SELECT sub_fs FROM grants", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(hub.token(&code).await.0, 200);
    let mut request = by_id(account);
    request.account = Some(pb::suspend_account_request::Account::SubFs(pb::SubjectOf {
        partner_id: crate::support::SP.into(),
        sub: sub_fs,
    }));
    let done = hub
        .operator
        .clone()
        .suspend_account(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.account_id, account.to_string());
    hub.operator
        .clone()
        .lift_account_suspension(lift(account))
        .await
        .unwrap();

    let sub_fi: String = hub
        .sql
        .get()
        .await
        .unwrap()
        .query_one("SELECT sub_fi FROM accounts", &[])
        .await
        .unwrap()
        .get(0);
    let mut request = by_id(account);
    request.account = Some(pb::suspend_account_request::Account::SubFi(pb::SubjectOf {
        partner_id: "demo-idp".into(),
        sub: sub_fi,
    }));
    let done = hub
        .operator
        .clone()
        .suspend_account(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.account_id, account.to_string());
    hub.stop().await;
}

/// Bad requests are refused with their code and change nothing; only an operator may ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_or_unauthorised_suspension_changes_nothing() {
    let hub = Hub::start().await;
    let code = signed_in_code(&hub).await;
    let account = the_account(&hub).await;

    // The gateway (any caller but an operator) is refused before anything runs.
    let refused = hub
        .front
        .clone()
        .suspend_account(by_id(account))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let refused = hub
        .front
        .clone()
        .lift_account_suspension(lift(account))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);

    let mut no_case = by_id(account);
    no_case.case = " ".into();
    let mut no_reason = by_id(account);
    no_reason.reason.clear();
    let mut no_account = by_id(account);
    no_account.account = None;
    let mut not_a_uuid = by_id(account);
    not_a_uuid.account = Some(pb::suspend_account_request::Account::AccountId(
        "jean".into(),
    ));
    for bad in [no_case, no_reason, no_account, not_a_uuid] {
        let e = hub.operator.clone().suspend_account(bad).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert_eq!(error_code(&e), "suspension_request_invalid");
    }
    let unknown = hub
        .operator
        .clone()
        .suspend_account(by_id(Uuid::new_v4()))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert_eq!(error_code(&unknown), "account_unknown");

    // Nothing changed: the session lives, the code redeems.
    assert_eq!(live_sessions(&hub).await, 1);
    assert_eq!(hub.token(&code).await.0, 200);
    hub.stop().await;
}

/// A suspension and a sign-in's callback at the same moment, several times: whichever
/// wins, no code of the account is redeemable and no session of it is live afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_racing_a_callback_never_lets_a_code_out() {
    let hub = Hub::start().await;
    signed_in_code(&hub).await;
    let account = the_account(&hub).await;
    let mut refused = 0;
    for _ in 0..6 {
        let (at_idp, flow) = hub.choose(&hub.authorize(&[]).await).await;
        let answer = hub.at_idp(&at_idp, "jean").await;
        let mut operator = hub.operator.clone();
        let (page, suspended) = tokio::join!(
            hub.callback(&flow, &answer),
            operator.suspend_account(by_id(account))
        );
        suspended.unwrap();
        match redirect_of(&page)
            .ok()
            .and_then(|to| query(&to).get("code").cloned())
        {
            // The sign-in committed first: the suspension ended what it wrote.
            Some(code) => {
                let (status, body) = hub.token(&code).await;
                assert_eq!(status, 400, "a code got out: {body}");
            }
            None => refused += 1,
        }
        assert_eq!(
            live_sessions(&hub).await,
            0,
            "a session outlived the suspension"
        );
        hub.operator
            .clone()
            .lift_account_suspension(lift(account))
            .await
            .unwrap();
    }
    eprintln!("{refused} of 6 callbacks refused in their statement");
    hub.stop().await;
}
