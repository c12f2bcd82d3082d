#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use relais_proto::registry::v1::GetServiceProviderRequest;
use relais_registry::RegistryError;
use relais_testkit::{TestBus, TestDb};
use time::{Duration, OffsetDateTime};
use tonic::Code;

use crate::authenticate::authenticate;
use crate::common::{
    BASIC_SECRET, LIFETIME_DAYS, POST_SECRET, Registry, TempDir, error_code, launch, seed,
};

const NEW_SECRET: &str = "rotated-secret-0123456789abcdefghijklmnopqrstuvwxyz";

#[tokio::test]
async fn reseeding_keeps_the_expiry_of_an_unchanged_secret_and_restarts_a_new_one() {
    let mut registry = Registry::start(&seed(BASIC_SECRET)).await;
    let first = registry.sp_expiry("sp-basic").await;
    let now = OffsetDateTime::now_utc();
    assert!(first > now + Duration::days(i64::from(LIFETIME_DAYS) - 1));
    assert!(first <= now + Duration::days(i64::from(LIFETIME_DAYS)));

    // A validity that a recomputation could not give back.
    registry
        .execute(
            "UPDATE service_providers SET secret_expires_at = now() + interval '10 days' \
             WHERE client_id = $1",
            "sp-basic",
        )
        .await;
    let shortened = registry.sp_expiry("sp-basic").await;

    registry.restart(&seed(BASIC_SECRET)).await;
    assert_eq!(registry.sp_expiry("sp-basic").await, shortened);
    authenticate(
        &mut registry.client,
        "sp-basic",
        BASIC_SECRET,
        "client_secret_basic",
    )
    .await
    .unwrap();

    let before = OffsetDateTime::now_utc();
    registry.restart(&seed(NEW_SECRET)).await;
    let renewed = registry.sp_expiry("sp-basic").await;
    assert!(
        renewed >= before + Duration::days(i64::from(LIFETIME_DAYS)) - Duration::seconds(1),
        "{renewed} is not a fresh validity"
    );
    // The other SP's secret did not change: its validity did not move either.
    assert!(renewed > registry.sp_expiry("sp-post").await);
    authenticate(
        &mut registry.client,
        "sp-basic",
        NEW_SECRET,
        "client_secret_basic",
    )
    .await
    .unwrap();
    let old = authenticate(
        &mut registry.client,
        "sp-basic",
        BASIC_SECRET,
        "client_secret_basic",
    )
    .await
    .unwrap_err();
    assert_eq!(old.code(), Code::Unauthenticated);
    assert_eq!(error_code(&old), "client_authentication_failed");

    registry.stop().await;
}

/// Starts the registry on `seed_text`, which must be refused: returns the error's message
/// after checking that no partner was stored.
pub async fn refused(seed_text: &str) -> String {
    let db = TestDb::create().await;
    let bus = TestBus::new();
    let dir = TempDir::new();
    let error = match launch(&db, &bus, &dir, seed_text).await {
        Ok(_) => panic!("a bad seed was accepted"),
        Err(error) => error,
    };
    assert!(
        matches!(
            error,
            RegistryError::Invalid(_) | RegistryError::PkceExemptPublicClient(_)
        ),
        "{error:?}"
    );
    let client = db
        .pool(relais_registry::SCHEMA, 1)
        .await
        .get()
        .await
        .unwrap();
    for table in ["service_providers", "identity_providers", "people"] {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table} written from a refused seed");
    }
    drop(client);
    db.cleanup().await;
    bus.cleanup().await;
    error.to_string()
}

#[tokio::test]
async fn the_fixture_seed_is_accepted() {
    // The seeds below differ from this one by one value each.
    let db = TestDb::create().await;
    let bus = TestBus::new();
    let dir = TempDir::new();
    let (tasks, _) = launch(&db, &bus, &dir, &seed(BASIC_SECRET)).await.unwrap();
    tasks.shutdown(crate::common::WAIT).await;
    bus.cleanup().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_weak_secret_is_refused() {
    let message = refused(&seed(BASIC_SECRET).replace(POST_SECRET, "short-but-not-empty")).await;
    assert!(message.contains("sp-post"), "{message}");
    assert!(message.contains("client_secret"), "{message}");
    assert!(message.contains("256 bits"), "{message}");
}

#[tokio::test]
async fn an_http_redirect_uri_off_loopback_is_refused() {
    let message = refused(
        &seed(BASIC_SECRET).replace("https://sp-post.example/cb", "http://sp-post.example/cb"),
    )
    .await;
    assert!(message.contains("http://sp-post.example/cb"), "{message}");
    assert!(message.contains("must be https"), "{message}");

    // A host that merely starts like a loopback address is not one.
    let message = refused(&seed(BASIC_SECRET).replace(
        "http://127.0.0.1:8700/cb",
        "http://127.0.0.1.nip.io:8700/cb",
    ))
    .await;
    assert!(
        message.contains("http://127.0.0.1.nip.io:8700/cb"),
        "{message}"
    );
}

#[tokio::test]
async fn an_sp_naming_an_unknown_idp_is_refused() {
    let message = refused(
        &seed(BASIC_SECRET).replace("idp_ids = [\"idp-b\"]", "idp_ids = [\"idp-b\", \"idp-x\"]"),
    )
    .await;
    assert!(message.contains("sp-post"), "{message}");
    assert!(
        message.contains("unknown identity provider idp-x"),
        "{message}"
    );
}

#[tokio::test]
async fn a_restart_never_lifts_a_suspension() {
    let mut registry = Registry::start(&seed(BASIC_SECRET)).await;
    registry
        .execute(
            "UPDATE service_providers SET status = 'suspended' WHERE client_id = $1",
            "sp-basic",
        )
        .await;
    registry.restart(&seed(BASIC_SECRET)).await;
    let refused = authenticate(
        &mut registry.client,
        "sp-basic",
        BASIC_SECRET,
        "client_secret_basic",
    )
    .await
    .unwrap_err();
    assert_eq!(error_code(&refused), "client_suspended");
    registry.stop().await;
}

#[tokio::test]
async fn a_restart_announces_only_the_partners_the_seed_changed() {
    let mut registry = Registry::start(&seed(BASIC_SECRET)).await;
    let mut listener = registry.listen("registry.#").await;
    // Unchanged: nothing to announce (a hub with 10,000 SPs would otherwise send 10,000).
    registry.restart(&seed(BASIC_SECRET)).await;
    registry
        .restart(&seed(BASIC_SECRET).replace("name = \"SP Post\"", "name = \"SP Post renamed\""))
        .await;
    // Events leave in commit order: had the first restart announced anything, it would
    // come before this one.
    let first = listener.wait_for("an announcement", |_| true).await;
    let partner = first.payload::<relais_bus::events::PartnerEvent>().unwrap();
    assert_eq!(partner.partner_id, "sp-post");
    registry.stop().await;
}

/// sp-post's block of the fixture seed, where a setting of its own goes.
const SP_POST_METHOD: &str =
    "idp_ids = [\"idp-b\"]\ntoken_endpoint_auth_method = \"client_secret_post\"";

async fn pkce_exempt(registry: &mut Registry, client_id: &str) -> bool {
    registry
        .client
        .get_service_provider(GetServiceProviderRequest {
            client_id: client_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .pkce_exempt
}

#[tokio::test]
async fn a_pkce_exemption_is_stored_returned_and_announced_when_it_changes() {
    let exempt = seed(BASIC_SECRET).replace(
        SP_POST_METHOD,
        &format!("{SP_POST_METHOD}\npkce_exempt = true"),
    );
    let mut registry = Registry::start(&exempt).await;
    assert!(pkce_exempt(&mut registry, "sp-post").await);
    assert!(
        !pkce_exempt(&mut registry, "sp-basic").await,
        "required by default"
    );

    // The exemption lifted by the seed: stored, and told to whoever caches the SP.
    let mut listener = registry.listen("registry.#").await;
    registry.restart(&seed(BASIC_SECRET)).await;
    let told = listener.wait_for("an announcement", |_| true).await;
    let partner = told.payload::<relais_bus::events::PartnerEvent>().unwrap();
    assert_eq!(partner.partner_id, "sp-post");
    assert!(!pkce_exempt(&mut registry, "sp-post").await);
    registry.stop().await;
}

#[tokio::test]
async fn a_public_client_cannot_be_exempt_from_pkce() {
    let message = refused(&seed(BASIC_SECRET).replace(
        SP_POST_METHOD,
        "idp_ids = [\"idp-b\"]\ntoken_endpoint_auth_method = \"none\"\npkce_exempt = true",
    ))
    .await;
    assert!(message.contains("sp-post"), "{message}");
    assert!(message.contains("pkce_exempt"), "{message}");
}
