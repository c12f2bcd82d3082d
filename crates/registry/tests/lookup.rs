#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hmac::{Hmac, Mac};
use prost::Message;
use relais_proto::registry::v1::{GetServiceProviderRequest, PartnerStatus, ServiceProvider};
use sha2::Sha256;

use crate::common::{BASIC_SECRET, HASH_KEY, Registry, error_code, seed};

fn hmac(secret: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(HASH_KEY.as_bytes()).unwrap();
    mac.update(secret.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// sp-basic exactly as seeded: every field listed, so a field added to the message (a
/// secret, a hash) fails this comparison or its compilation.
fn expected_sp_basic() -> ServiceProvider {
    ServiceProvider {
        client_id: "sp-basic".into(),
        name: "SP Basic".into(),
        sector_identifier: "sector-basic".into(),
        redirect_uris: vec![
            "https://sp-basic.example/cb".into(),
            "http://127.0.0.1:8700/cb".into(),
        ],
        post_logout_redirect_uris: vec!["https://sp-basic.example/bye".into()],
        scopes: vec!["openid".into(), "email".into()],
        claims: vec!["email".into()],
        acr_values: vec!["eidas1".into(), "eidas2".into()],
        idp_ids: vec!["idp-a".into(), "idp-b".into()],
        id_token_signed_response_alg: "RS256".into(),
        token_endpoint_auth_method: "client_secret_basic".into(),
        status: PartnerStatus::Active as i32,
        // Public keys and answer formats: none registered, plain JSON answers.
        jwks: String::new(),
        userinfo_signed_response_alg: String::new(),
        id_token_encrypted_response_alg: String::new(),
        id_token_encrypted_response_enc: String::new(),
        userinfo_encrypted_response_alg: String::new(),
        userinfo_encrypted_response_enc: String::new(),
        // Single sign-on is never assumed; the terms' 256-bit state and nonce.
        sso: false,
        sso_acr_values: Vec::new(),
        min_random_length: 43,
        backchannel_logout_uri: "https://sp-basic.example/backchannel-logout".into(),
        // Not exempt: the seed says nothing, so PKCE is required.
        pkce_exempt: false,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_seeded_service_provider_is_returned_as_seeded() {
    let mut registry = Registry::start(&seed(BASIC_SECRET)).await;

    let sp = registry
        .client
        .get_service_provider(GetServiceProviderRequest {
            client_id: "sp-basic".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sp, expected_sp_basic());

    // Defaults: the sector is the client id, ES256.
    let post = registry
        .client
        .get_service_provider(GetServiceProviderRequest {
            client_id: "sp-post".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(post.sector_identifier, "sp-post");
    assert_eq!(post.id_token_signed_response_alg, "ES256");
    assert_eq!(post.token_endpoint_auth_method, "client_secret_post");

    let missing = registry
        .client
        .get_service_provider(GetServiceProviderRequest {
            client_id: "sp-nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(error_code(&missing), "unknown_client");

    registry.stop().await;
}

#[tokio::test]
async fn the_secret_is_stored_as_its_hmac_and_never_returned() {
    let mut registry = Registry::start(&seed(BASIC_SECRET)).await;
    let expected_hash = hmac(BASIC_SECRET);

    // Stored: the HMAC under the registry's key, and the secret nowhere in clear.
    let row = registry
        .sql
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT secret_hash, row_to_json(s)::text FROM service_providers s \
             WHERE client_id = 'sp-basic'",
            &[],
        )
        .await
        .unwrap();
    let stored: Vec<u8> = row.get(0);
    let whole_row: String = row.get(1);
    assert_eq!(stored, expected_hash);
    assert!(!whole_row.contains(BASIC_SECRET), "{whole_row}");

    // Returned: neither the secret nor its hash, in any form, anywhere in the message.
    let sp = registry
        .client
        .get_service_provider(GetServiceProviderRequest {
            client_id: "sp-basic".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let wire = sp.encode_to_vec();
    let hex: String = expected_hash.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!contains(&wire, &expected_hash));
    assert!(!contains(&wire, hex.as_bytes()));
    assert!(!contains(&wire, BASIC_SECRET.as_bytes()));
    // Nothing but the record itself.
    assert_eq!(sp, expected_sp_basic());

    registry.stop().await;
}
