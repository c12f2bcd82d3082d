//! A sign-in through the front: nothing stored until the IdP answers, then one write that
//! keeps only hashes; a replayed answer or a forged flow cookie issues nothing.

use crate::support::{
    HUB, Hub, LEGACY, LEGACY_REDIRECT, LEGACY_SECRET, REDIRECT, query, redirect_of,
};
use relais_proto::oidc_front::v1 as pb;

/// Up to the IdP's callback: the flow cookie and the IdP's answer.
async fn up_to_the_callback(hub: &Hub) -> (String, Vec<pb::Param>) {
    through_the_idp(hub, hub.authorize(&[]).await).await
}

/// From the chooser to the IdP's callback.
async fn through_the_idp(hub: &Hub, chooser: pb::FlowResponse) -> (String, Vec<pb::Param>) {
    let (at_idp, flow) = hub.choose(&chooser).await;
    assert!(at_idp.starts_with(hub.idp.issuer()), "{at_idp}");
    let answer = hub.at_idp(&at_idp, "jean").await;
    (flow, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_stored_before_the_idp_answers_then_once_and_only_as_hashes() {
    let hub = Hub::start().await;
    let (flow, answer) = up_to_the_callback(&hub).await;
    for table in ["accounts", "sessions", "grants", "access_tokens", "outbox"] {
        assert_eq!(
            hub.rows(table).await,
            0,
            "{table} written before the IdP answered"
        );
    }

    let done = hub.callback(&flow, &answer).await;
    let back = redirect_of(&done).unwrap();
    assert!(back.starts_with(REDIRECT), "{back}");
    let q = query(&back);
    let code = q["code"].clone();
    let session = done.session_cookie.clone().unwrap().value;
    assert!(!session.is_empty());
    for table in ["accounts", "sessions", "grants"] {
        assert_eq!(hub.rows(table).await, 1, "{table}");
    }
    // The code and the session cookie are kept only as hashes.
    assert_eq!(hub.stored_anywhere(&code).await, Vec::<String>::new());
    assert_eq!(hub.stored_anywhere(&session).await, Vec::<String>::new());

    let (status, tokens) = hub.token(&code).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(hub.stored_anywhere(access).await, Vec::<String>::new());
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_idp_answer_issues_no_second_code() {
    let hub = Hub::start().await;
    let (flow, answer) = up_to_the_callback(&hub).await;
    let first = hub.callback(&flow, &answer).await;
    assert!(redirect_of(&first).unwrap().contains("code="));
    // The same cookie and the same answer again, as a replaying attacker would.
    let again = hub.callback(&flow, &answer).await;
    if let Ok(to) = redirect_of(&again) {
        assert!(!query(&to).contains_key("code"), "a second code: {to}");
    }
    assert_eq!(hub.rows("sessions").await, 1);
    assert_eq!(hub.rows("grants").await, 1);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_cookie_altered_or_of_another_purpose_is_refused() {
    let hub = Hub::start().await;
    let (flow, answer) = up_to_the_callback(&hub).await;
    let mut bytes = flow.clone().into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(bytes).unwrap();
    for forged in [altered.as_str(), "", "not-a-sealed-flow"] {
        let r = hub.callback(forged, &answer).await;
        assert!(
            redirect_of(&r).is_err(),
            "a forged flow cookie reached the SP: {r:?}"
        );
    }
    assert_eq!(hub.rows("sessions").await, 0);
    // The real cookie still completes: the refusals spent nothing.
    let done = hub.callback(&flow, &answer).await;
    assert!(redirect_of(&done).unwrap().contains("code="));
    hub.stop().await;
}

/// Lifetimes run on the front's clock, in Rust and in SQL alike: moved past them, a code
/// and then an access token are refused without the test waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_and_access_tokens_expire_on_the_fronts_clock() {
    use relais_oidc_front::clock::ManualClock;
    let clock = std::sync::Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let hub = Hub::start_with_clock(clock.clone()).await;

    let (flow, answer) = up_to_the_callback(&hub).await;
    let code = query(&redirect_of(&hub.callback(&flow, &answer).await).unwrap())["code"].clone();
    clock.advance(time::Duration::seconds(61));
    let (status, body) = hub.token(&code).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");

    let (flow, answer) = up_to_the_callback(&hub).await;
    let code = query(&redirect_of(&hub.callback(&flow, &answer).await).unwrap())["code"].clone();
    let (status, tokens) = hub.token(&code).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    assert_eq!(hub.userinfo(&access).await.0, 200);
    // The default lifetime is 30 minutes.
    clock.advance(time::Duration::seconds(1801));
    let (status, body) = hub.userinfo(&access).await;
    assert_eq!(status, 401, "{body}");
    hub.stop().await;
}

/// A block another replica recorded (a row in the shared table) is enforced here too,
/// within the second the live blocks are trusted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_recorded_by_another_replica_is_enforced_here() {
    let hub = Hub::start().await;
    let (status, body) = hub.token("not-a-code").await;
    assert_eq!(status, 400, "{body}");
    hub.sql
        .get()
        .await
        .unwrap()
        .execute(
            "INSERT INTO auth_failures (subject, failures, window_started_at, blocks, \
             blocked_until, updated_at) VALUES ($1, 10, now(), 1, now() + interval '1 hour', now()) \
             ON CONFLICT (subject) DO UPDATE SET blocks = 1, \
             blocked_until = now() + interval '1 hour'",
            &[&format!("client:{}", crate::support::SP)],
        )
        .await
        .unwrap();
    let mut last = (0, serde_json::Value::Null);
    for _ in 0..50 {
        last = hub.token("not-a-code").await;
        if last.0 == 429 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(last.0, 429, "{}", last.1);
    assert_eq!(last.1["error_code"], "client_blocked");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_sent_with_another_redirect_uri_is_refused_and_burnt() {
    let hub = Hub::start().await;
    let (flow, answer) = up_to_the_callback(&hub).await;
    let done = hub.callback(&flow, &answer).await;
    let code = query(&redirect_of(&done).unwrap())["code"].clone();

    let (status, body) = hub
        .token_with(&code, &format!("{REDIRECT}/elsewhere"))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert_eq!(body["error_code"], "token_redirect_uri_mismatch", "{body}");
    // Whoever holds it is not the client that asked for it: the code is spent.
    let (status, body) = hub.token(&code).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert_eq!(hub.rows("access_tokens").await, 0);

    // An unknown code changes nothing.
    let (status, body) = hub.token("not-a-code-0123456789").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_and_their_failures_are_counted_for_operators() {
    let count = |series: &str| {
        relais_telemetry::metrics::render()
            .lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let signed_in = "relais_sign_ins_total{path=\"idp\"} ";
    let refused = "relais_sign_in_failures_total{code=\"unknown_scope\"} ";
    let hub = Hub::start().await;
    let (before_in, before_refused) = (count(signed_in), count(refused));
    let (flow, answer) = up_to_the_callback(&hub).await;
    let done = hub.callback(&flow, &answer).await;
    assert!(redirect_of(&done).unwrap().contains("code="));
    assert_eq!(count(signed_in), before_in + 1);

    let back = hub.authorize(&[("scope", "openid unknown_scope")]).await;
    let to = redirect_of(&back).unwrap();
    assert_eq!(query(&to)["error"], "invalid_scope", "{to}");
    assert_eq!(count(refused), before_refused + 1);
    hub.stop().await;
}

/// The `sub` an SP knows: the ID token's, for the code of a completed sign-in.
async fn subject_of_a_sign_in(hub: &Hub) -> String {
    use base64::Engine as _;
    let (flow, answer) = up_to_the_callback(hub).await;
    let done = hub.callback(&flow, &answer).await;
    let code = query(&redirect_of(&done).unwrap())["code"].clone();
    let (status, tokens) = hub.token(&code).await;
    assert_eq!(status, 200, "{tokens}");
    let id_token = tokens["id_token"].as_str().unwrap();
    let payload = id_token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sub"].as_str().unwrap().to_owned()
}

/// An account is written with its sign-in in one statement under an id derived from
/// the IdP subject; one created before (a random id) is still found, and its sessions,
/// grants and `sub` stay its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_is_found_by_its_derived_id_and_an_older_one_keeps_its_own() {
    let hub = Hub::start().await;
    let first = subject_of_a_sign_in(&hub).await;
    let client = hub.sql.get().await.unwrap();
    let derived: uuid::Uuid = client
        .query_one("SELECT id FROM accounts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(derived.get_version_num(), 8);
    // The same person again: the same account, the same `sub`.
    assert_eq!(subject_of_a_sign_in(&hub).await, first);
    assert_eq!(hub.rows("accounts").await, 1);

    // As if the account had been created with a random id before ids were derived.
    let legacy = uuid::Uuid::new_v4();
    client
        .execute("UPDATE accounts SET id = $1", &[&legacy])
        .await
        .unwrap();
    let again = subject_of_a_sign_in(&hub).await;
    assert_ne!(
        again, first,
        "the sub was not computed from the account found"
    );
    assert_eq!(hub.rows("accounts").await, 1);
    let newest = client
        .query_one(
            "SELECT s.account_id, g.account_id FROM sessions s JOIN grants g USING (sid) \
             ORDER BY s.created_at DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(newest.get::<_, uuid::Uuid>(0), legacy);
    assert_eq!(newest.get::<_, uuid::Uuid>(1), legacy);
    hub.stop().await;
}

fn is_chooser(r: &pb::FlowResponse) -> bool {
    matches!(r.outcome, Some(pb::flow_response::Outcome::Chooser(_)))
}

/// OAuth 2.1: an SP registered without an exemption sends PKCE or goes back with the
/// error, as every refusal after its redirect URI is trusted (`state`, `iss`, the code).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sp_requiring_pkce_is_sent_back_without_a_challenge_and_served_with_one() {
    let hub = Hub::start().await;
    for missing in [
        &[("code_challenge", ""), ("code_challenge_method", "")][..],
        // A method alone is no challenge.
        &[("code_challenge", "")][..],
    ] {
        let back = hub.authorize(missing).await;
        let to = redirect_of(&back).unwrap();
        assert!(to.starts_with(REDIRECT), "{to}");
        let q = query(&to);
        assert_eq!(q["error"], "invalid_request", "{to}");
        assert!(q["error_description"].ends_with("[pkce_required]"), "{to}");
        assert_eq!(q["state"], "state-0123456789-0123456789-0123456789-0123");
        assert_eq!(q["iss"], HUB);
        assert!(!q.contains_key("code"), "{to}");
    }
    // With S256, the same request reaches the chooser, and its code needs the verifier.
    let chooser = hub.authorize(&[]).await;
    assert!(is_chooser(&chooser), "{chooser:?}");
    let (flow, answer) = through_the_idp(&hub, chooser).await;
    let code = query(&redirect_of(&hub.callback(&flow, &answer).await).unwrap())["code"].clone();
    let (status, tokens) = hub.token(&code).await;
    assert_eq!(status, 200, "{tokens}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exempt_confidential_sp_signs_in_without_pkce() {
    let hub = Hub::start().await;
    let chooser = hub
        .authorize(&[
            ("client_id", LEGACY),
            ("redirect_uri", LEGACY_REDIRECT),
            ("code_challenge", ""),
            ("code_challenge_method", ""),
        ])
        .await;
    assert!(is_chooser(&chooser), "{chooser:?}");
    let (flow, answer) = through_the_idp(&hub, chooser).await;
    let back = redirect_of(&hub.callback(&flow, &answer).await).unwrap();
    assert!(back.starts_with(LEGACY_REDIRECT), "{back}");
    let code = query(&back)["code"].clone();
    let (status, tokens) = hub
        .token_as(LEGACY, LEGACY_SECRET, &code, LEGACY_REDIRECT, None)
        .await;
    assert_eq!(status, 200, "{tokens}");
    hub.stop().await;
}

/// An access token names its client after its random part, so userinfo prepares the SP's
/// answer before the one statement that reads the token and records the step. The name
/// is no key: another client's name on the same random part is another (unknown) token,
/// and a token of the earlier form (random part only) is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_names_its_client_and_only_the_token_issued_is_served() {
    let hub = Hub::start().await;
    let (flow, answer) = up_to_the_callback(&hub).await;
    let code = query(&redirect_of(&hub.callback(&flow, &answer).await).unwrap())["code"].clone();
    let (status, tokens) = hub.token(&code).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let (random, client) = access.split_once('.').unwrap();
    assert_eq!((random.len(), client), (43, crate::support::SP));

    let (status, body) = hub.userinfo(&access).await;
    assert_eq!(status, 200, "{body}");
    let claims: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        claims["sub"].is_string() && claims["email"].is_string(),
        "{body}"
    );

    // The same random part under another client's name, or with the name cut off.
    for forged in [format!("{random}.{LEGACY}"), random.to_string()] {
        let (status, body) = hub.userinfo(&forged).await;
        assert_eq!(status, 401, "{forged}: {body}");
    }

    // A token stored before tokens named their client: found by its hash alone.
    let earlier = "e".repeat(43);
    let hash = relais_oidc_front::domain::secrets::sha256(&earlier);
    let issued = relais_oidc_front::domain::secrets::sha256(&access);
    hub.sql
        .get()
        .await
        .unwrap()
        .execute(
            "INSERT INTO access_tokens (token_hash, code_hash, connection_id, client_id, sub_fs, \
             account_id, idp_id, acr, claims, expires_at, scopes, issued_at) \
             SELECT $1, code_hash, connection_id, client_id, sub_fs, account_id, idp_id, acr, \
             claims, expires_at, scopes, issued_at FROM access_tokens WHERE token_hash = $2",
            &[&hash, &issued],
        )
        .await
        .unwrap();
    let (status, earlier_body) = hub.userinfo(&earlier).await;
    assert_eq!(status, 200, "{earlier_body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&earlier_body).unwrap(),
        claims
    );
    hub.stop().await;
}

/// OAuth 2.1 §4.1.1.3 / RFC 9700 §2.1.1: a code without a challenge is redeemed only by a
/// client exempt from PKCE when it redeems it. One obtained while exempt, presented after
/// the registry lifted the exemption, is refused and spent; a verifier does not rescue it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_obtained_while_exempt_is_refused_once_the_exemption_is_lifted() {
    let hub = Hub::start().await;
    let without_pkce = [
        ("client_id", LEGACY),
        ("redirect_uri", LEGACY_REDIRECT),
        ("code_challenge", ""),
        ("code_challenge_method", ""),
    ];
    let mut codes = Vec::new();
    for _ in 0..2 {
        let chooser = hub.authorize(&without_pkce).await;
        assert!(is_chooser(&chooser), "{chooser:?}");
        let (flow, answer) = through_the_idp(&hub, chooser).await;
        let back = redirect_of(&hub.callback(&flow, &answer).await).unwrap();
        codes.push(query(&back)["code"].clone());
    }
    // The token is not asked for yet: the secret the front remembers must not keep the
    // exemption either, so the client authenticates once before the change.
    let (status, body) = hub
        .token_as(LEGACY, LEGACY_SECRET, "not-a-code", LEGACY_REDIRECT, None)
        .await;
    assert_eq!(status, 400, "{body}");

    hub.reseed(
        |seed| seed.replace("pkce_exempt = true\n", ""),
        || async {
            let answer = hub.authorize(&without_pkce).await;
            redirect_of(&answer).is_ok_and(|to| to.contains("pkce_required"))
        },
    )
    .await;

    let (status, body) = hub
        .token_as(LEGACY, LEGACY_SECRET, &codes[0], LEGACY_REDIRECT, None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert_eq!(body["error_code"], "pkce_exemption_lifted", "{body}");
    // Spent: presented again, it is a replay, never a token.
    let (status, body) = hub
        .token_as(LEGACY, LEGACY_SECRET, &codes[0], LEGACY_REDIRECT, None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_code"], "code_reused", "{body}");
    // A made-up verifier answers no challenge: still refused (downgrade).
    let (status, body) = hub
        .token_as(
            LEGACY,
            LEGACY_SECRET,
            &codes[1],
            LEGACY_REDIRECT,
            Some(crate::support::VERIFIER),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_code"], "pkce_failed", "{body}");
    let issued: i64 = hub.rows("access_tokens").await;
    assert_eq!(issued, 0, "a token was issued for a code without PKCE");
    hub.stop().await;
}

/// The parameters are counted before anything else looks at them, the client not yet
/// authenticated: 16,000 distinct ones are refused at once, at /authorize (back to the
/// SP, its redirect URI being registered) and at /token, and nothing is issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_thousand_parameters_are_refused_at_once() {
    let hub = Hub::start().await;
    let names: Vec<String> = (0..16_000).map(|i| format!("p{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "x")).collect();

    let started = std::time::Instant::now();
    let back = redirect_of(&hub.authorize(&many).await).unwrap();
    assert!(back.starts_with(REDIRECT), "{back}");
    assert!(back.contains("too_many_parameters"), "{back}");
    assert!(!back.contains("code="), "{back}");

    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", "c"),
        ("redirect_uri", REDIRECT),
    ];
    form.extend(many.iter().copied());
    let r = hub
        .front
        .clone()
        .token(pb::TokenRequest {
            params: crate::support::params(&form),
            authorization: String::new(),
            source: Some(crate::support::source()),
        })
        .await
        .unwrap()
        .into_inner();
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(r.http_status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert_eq!(body["error_code"], "too_many_parameters", "{body}");
    // Both answered well within what a quadratic scan of 16,000 names takes.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(hub.rows("grants").await, 0);
    hub.stop().await;
}

/// `/end_session` on the front's clock: a hint older than any session can live names
/// none and is refused; a session past its expiry is not ended through the IdP (its ID
/// token is not handed on), while a live one is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_session_refuses_a_hint_older_than_a_session_and_hands_on_no_expired_session() {
    use relais_oidc_front::clock::ManualClock;
    let clock = std::sync::Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let hub = Hub::start_with_clock(clock.clone()).await;
    let signed_in = || async {
        let (flow, answer) = up_to_the_callback(&hub).await;
        let done = hub.callback(&flow, &answer).await;
        let session = done.session_cookie.clone().unwrap().value;
        let code = query(&redirect_of(&done).unwrap())["code"].clone();
        let (status, tokens) = hub.token(&code).await;
        assert_eq!(status, 200, "{tokens}");
        (session, tokens["id_token"].as_str().unwrap().to_string())
    };
    let end = |session: String, hint: Option<String>| {
        let front = hub.front.clone();
        async move {
            let mut pairs = vec![];
            if let Some(h) = &hint {
                pairs.push(("id_token_hint", h.as_str()));
            }
            front
                .clone()
                .end_session(pb::EndSessionRequest {
                    params: crate::support::params(&pairs),
                    session,
                    source: Some(crate::support::source()),
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let ttl = i64::from(hub.config.session_ttl_seconds);

    // A live session with its fresh hint: ended through the IdP.
    let (session, hint) = signed_in().await;
    let to_idp = redirect_of(&end(session, Some(hint)).await).unwrap();
    assert!(to_idp.starts_with(hub.idp.issuer()), "{to_idp}");

    // Past the session's lifetime: the old hint is refused, and the cookie alone ends
    // nothing through the IdP.
    let (session, hint) = signed_in().await;
    clock.advance(time::Duration::seconds(ttl + 1));
    let refused = end(session.clone(), Some(hint)).await;
    match &refused.outcome {
        Some(pb::flow_response::Outcome::Error(page)) => {
            assert_eq!(page.code, "id_token_hint_invalid", "{page:?}")
        }
        other => panic!("not refused: {other:?}"),
    }
    let answer = end(session, None).await;
    if let Ok(to) = redirect_of(&answer) {
        assert!(!to.starts_with(hub.idp.issuer()), "sent to the IdP: {to}");
    }
    hub.stop().await;
}

fn confirm_token(r: &pb::FlowResponse) -> String {
    match &r.outcome {
        Some(pb::flow_response::Outcome::LogoutConfirm(c)) => c.token.clone(),
        other => panic!("no confirmation page: {other:?}"),
    }
}

fn error_code(r: &pb::FlowResponse) -> String {
    match &r.outcome {
        Some(pb::flow_response::Outcome::Error(page)) => page.code.clone(),
        other => panic!("not refused: {other:?}"),
    }
}

/// Logout CSRF (RP-Initiated Logout 1.0 §2): only a hint of the browser's own session
/// ends it at once. No hint, or another session's, gets the confirmation page and ends
/// nothing; the page's token ends this session only, and a forged, expired, or other
/// browser's token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_session_asks_to_confirm_unless_the_hint_is_this_sessions() {
    use relais_oidc_front::clock::ManualClock;
    let clock = std::sync::Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let hub = Hub::start_with_clock(clock.clone()).await;
    let signed_in = || async {
        let (flow, answer) = up_to_the_callback(&hub).await;
        let done = hub.callback(&flow, &answer).await;
        let session = done.session_cookie.clone().unwrap().value;
        let code = query(&redirect_of(&done).unwrap())["code"].clone();
        let (status, tokens) = hub.token(&code).await;
        assert_eq!(status, 200, "{tokens}");
        (session, tokens["id_token"].as_str().unwrap().to_string())
    };
    let end = |session: &str, pairs: Vec<(&str, &str)>| {
        let mut front = hub.front.clone();
        let request = pb::EndSessionRequest {
            params: crate::support::params(&pairs),
            session: session.to_string(),
            source: Some(crate::support::source()),
        };
        async move { front.end_session(request).await.unwrap().into_inner() }
    };
    let confirm = |session: &str, token: &str, stay: bool| {
        let mut front = hub.front.clone();
        let request = pb::ConfirmEndSessionRequest {
            token: token.to_string(),
            session: session.to_string(),
            source: Some(crate::support::source()),
            stay,
        };
        async move {
            front
                .confirm_end_session(request)
                .await
                .unwrap()
                .into_inner()
        }
    };
    let ended = || async {
        let client = hub.sql.get().await.unwrap();
        client
            .query_one(
                "SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };

    let (mine, _) = signed_in().await;
    let (theirs, their_hint) = signed_in().await;

    // A cross-site GET with no hint: a page, nothing ended, the cookie kept.
    let asked = end(&mine, vec![]).await;
    let token = confirm_token(&asked);
    assert!(asked.session_cookie.is_none(), "{asked:?}");
    // Another session's hint asks too, with the SP's way back sealed in.
    let asked_with_back = end(
        &mine,
        vec![
            ("id_token_hint", their_hint.as_str()),
            ("post_logout_redirect_uri", crate::support::LOGOUT),
            ("state", "st-1"),
        ],
    )
    .await;
    let token_with_back = confirm_token(&asked_with_back);
    assert_eq!(ended().await, 0);

    // The attacks: forged, sealed for another purpose, of another browser's session.
    assert_eq!(
        error_code(&confirm(&mine, "forged", false).await),
        "logout_confirmation_invalid"
    );
    let flow_cookie = hub.authorize(&[]).await.flow_cookie.unwrap().value;
    assert_eq!(
        error_code(&confirm(&mine, &flow_cookie, false).await),
        "logout_confirmation_invalid"
    );
    assert_eq!(
        error_code(&confirm(&theirs, &token, false).await),
        "logout_confirmation_invalid"
    );
    assert_eq!(ended().await, 0);
    // "Stay signed in" ends nothing.
    let stayed = confirm(&mine, &token, true).await;
    assert!(stayed.session_cookie.is_none());
    assert!(
        matches!(&stayed.outcome, Some(pb::flow_response::Outcome::Notice(n)) if n.code == "still_signed_in"),
        "{stayed:?}"
    );
    assert_eq!(ended().await, 0);

    // Confirmed in the same browser: ended as the SP's own logout, through the IdP.
    let to_idp = redirect_of(&confirm(&mine, &token_with_back, false).await).unwrap();
    assert!(to_idp.starts_with(hub.idp.issuer()), "{to_idp}");
    assert_eq!(ended().await, 1);
    // Replayed once the session is over: signed out, nothing else ended.
    let again = confirm(&mine, &token_with_back, false).await;
    let back = redirect_of(&again).unwrap();
    assert!(back.starts_with(crate::support::LOGOUT), "{back}");
    assert_eq!(query(&back)["state"], "st-1");
    assert_eq!(ended().await, 1);
    // A browser with no session is told it is signed out, no page to confirm.
    let signed_out = end("", vec![]).await;
    assert!(
        matches!(&signed_out.outcome, Some(pb::flow_response::Outcome::Notice(n)) if n.code == "signed_out"),
        "{signed_out:?}"
    );

    // A token past its five minutes is refused.
    let late = confirm_token(&end(&theirs, vec![]).await);
    clock.advance(time::Duration::seconds(301));
    assert_eq!(
        error_code(&confirm(&theirs, &late, false).await),
        "logout_confirmation_invalid"
    );
    assert_eq!(ended().await, 1);
    // Its own hint ends it at once (the SP asked).
    let to_idp =
        redirect_of(&end(&theirs, vec![("id_token_hint", their_hint.as_str())]).await).unwrap();
    assert!(to_idp.starts_with(hub.idp.issuer()), "{to_idp}");
    assert_eq!(ended().await, 2);
    hub.stop().await;
}
