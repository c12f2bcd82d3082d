//! The round trip to an IdP: what the bridge asks, what it accepts back, and the answers
//! it refuses (another round trip's state, a tampered round trip, a level too low).

use crate::support::{Hub, code_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idp_is_asked_for_the_level_and_its_answer_gives_the_identity() {
    let hub = Hub::start().await;
    let start = hub.start_login(&["eidas2"]).await;
    let url = url::Url::parse(&start.authorization_url).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert!(start.authorization_url.starts_with(hub.idp.issuer()));
    assert_eq!(q["acr_values"], "eidas2");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], crate::support::CALLBACK);
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43);
    // The round trip is sealed: neither the state nor the nonce shows in it.
    assert!(!start.round_trip.contains(&q["state"]));
    assert!(!start.round_trip.contains(&q["nonce"]));

    let answer = hub.at_idp(&start.authorization_url, "jean", "none").await;
    let identity = hub.finish(&start.round_trip, &answer).await.unwrap();
    assert_eq!(identity.idp_id, "demo-idp");
    assert!(!identity.sub.is_empty());
    assert_eq!(identity.acr, "eidas2");
    let claims: serde_json::Value = serde_json::from_str(&identity.claims_json).unwrap();
    assert_eq!(claims["email"], "jean.dupont@demo-idp.test");
    assert!(!identity.id_token.is_empty());
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_is_taken_only_with_its_own_round_trip_untouched() {
    let hub = Hub::start().await;
    // As the front asks: every acceptable level, lowest first.
    let levels = ["eidas1", "eidas2", "eidas3"];
    let mine = hub.start_login(&levels).await;
    let other = hub.start_login(&levels).await;
    let answer = hub.at_idp(&mine.authorization_url, "jean", "none").await;

    // Another browser's round trip: its state is not the one the IdP sent back.
    let refused = hub.finish(&other.round_trip, &answer).await.unwrap_err();
    assert_eq!(code_of(&refused), "idp_state_mismatch");
    // A round trip altered on its way: it no longer opens.
    let mut tampered = mine.round_trip.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let refused = hub.finish(&tampered, &answer).await.unwrap_err();
    assert!(!code_of(&refused).is_empty(), "{refused:?}");
    assert!(hub.finish("", &answer).await.is_err());
    // Its own round trip still works: the refusals spent nothing.
    let mine = hub.finish(&mine.round_trip, &answer).await;
    assert!(mine.is_ok(), "{mine:?}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_level_below_the_one_asked_and_a_bad_signature_are_refused() {
    let hub = Hub::start().await;
    for (scenario, code) in [
        ("lower_acr", "idp_acr_too_low"),
        ("bad_signature", "idp_signature_invalid"),
        ("wrong_nonce", "idp_nonce_mismatch"),
    ] {
        let start = hub.start_login(&["eidas2"]).await;
        let answer = hub.at_idp(&start.authorization_url, "jean", scenario).await;
        let refused = hub.finish(&start.round_trip, &answer).await.unwrap_err();
        assert_eq!(code_of(&refused), code, "{scenario}");
    }
    hub.stop().await;
}

/// The demo IdP's discovery lists HS256: an ID token MACed with the client secret the IdP
/// and the hub share is refused all the same (the hub's algorithms only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_signed_with_the_client_secret_is_refused_whatever_the_idp_lists() {
    let hub = Hub::start().await;
    let start = hub.start_login(&["eidas2"]).await;
    let answer = hub
        .at_idp(&start.authorization_url, "jean", "symmetric_signature")
        .await;
    let refused = hub.finish(&start.round_trip, &answer).await.unwrap_err();
    assert_eq!(code_of(&refused), "idp_signature_invalid");
    hub.stop().await;
}

/// The bridge reuses an IdP's registry record a short while, never longer: an IdP the
/// operator suspends is refused once `registry_cache_ms` has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_idp_is_refused_once_its_record_is_no_longer_fresh() {
    use relais_proto::registry::v1 as reg;
    let hub = Hub::start_with(|c| c.registry_cache_ms = 300).await;
    hub.start_login(&["eidas1"]).await;
    hub.registry
        .clone()
        .set_identity_provider_status(reg::SetStatusRequest {
            id: "demo-idp".into(),
            status: reg::PartnerStatus::Suspended as i32,
            reason: "incident".into(),
        })
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let refused = hub.try_start_login(&["eidas1"]).await.unwrap_err();
    assert_eq!(code_of(&refused), "idp_disabled");
    hub.stop().await;
}

/// An IdP whose discovery puts its token endpoint on another host is refused before the
/// browser is sent to it: no code would be issued for the hub, no secret sent elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_whose_endpoints_leave_its_host_is_refused() {
    let hub = Hub::start().await;
    let refused = hub
        .bridge
        .clone()
        .start_login(relais_proto::idp_bridge::v1::StartLoginRequest {
            flow_id: "flow-1".into(),
            idp_id: "rogue-idp".into(),
            sp_id: "sp".into(),
            sp_name: "Service".into(),
            acr_values: vec!["eidas1".into()],
            scopes: vec!["openid".into(), "email".into()],
            source_ip: "127.0.0.1".into(),
            source_port: 50_000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&refused), "idp_endpoint_not_allowed");
    assert!(refused.message().contains("token_endpoint"), "{refused:?}");
    // The demo IdP, all on its own host, is served as before.
    hub.start_login(&["eidas1"]).await;
    hub.stop().await;
}
