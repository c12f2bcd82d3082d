//! IdPs' client secrets at rest: sealed under the registry's key-encryption key, bound to
//! their IdP, opened for the bridge only, and never in clear in any table.

use relais_config::{DEVELOPMENT_KEK, DatabaseConfig, Secret};
use relais_jose::envelope;
use relais_jose::{KeyWrap, LocalKek};
use relais_proto::registry::v1 as pb;
use relais_registry::RegistryConfig;
use relais_testkit::TestDb;
use tonic::Code;

use crate::common::{BASIC_SECRET, Registry, error_code, seed};

const KEK_1: &str = "registry-test-kek-one-0123456789abcdefghijklm";
const KEK_2: &str = "registry-test-kek-two-0123456789abcdefghijklm";
/// The seed's secrets (`common::seed`).
const SECRET_A: &str = "hub-secret-at-idp-a";
const SECRET_B: &str = "hub-secret-at-idp-b";

/// The KEK and the other KEKs a start is given.
fn keks(kek: &'static str, others: &'static [&'static str]) -> impl FnOnce(&mut RegistryConfig) {
    move |c| {
        c.key_encryption_key = Secret::new(kek);
        c.other_key_encryption_keys = others.iter().map(|k| Secret::new(*k)).collect();
    }
}

/// A seed naming no IdP: a restart on it leaves the stored secrets to the start's own
/// sealing, with no seed to repair them.
fn seed_without_idps() -> String {
    let full = seed(BASIC_SECRET);
    // The staff member only: a contact names an SP, which names IdPs.
    let staff = full.rfind("[[people]]").unwrap();
    full[staff..].to_string()
}

fn kek_id(kek: &str) -> String {
    LocalKek::new(kek).unwrap().kek_id().to_string()
}

/// The registry's tables whose rows, as text, hold `needle`.
async fn tables_holding(registry: &Registry, needle: &str) -> Vec<String> {
    let client = registry.sql.get().await.unwrap();
    let tables = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
            &[&relais_registry::SCHEMA],
        )
        .await
        .unwrap();
    assert!(tables.len() > 3, "the scan found the registry's tables");
    let mut holding = Vec::new();
    for table in tables {
        let name: String = table.get(0);
        let rows = client
            .query(
                &format!(
                    "SELECT t::text FROM {}.\"{name}\" t",
                    relais_registry::SCHEMA
                ),
                &[],
            )
            .await
            .unwrap();
        if rows.iter().any(|r| r.get::<_, String>(0).contains(needle)) {
            holding.push(name);
        }
    }
    holding
}

/// The stored envelope of an IdP's secret, and whether a clear one is left.
async fn stored(registry: &Registry, id: &str) -> (Option<String>, Option<String>) {
    let row = registry
        .sql
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT sealed_client_secret, client_secret FROM identity_providers WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn set_sealed(registry: &Registry, id: &str, sealed: &str) {
    let n = registry
        .sql
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE identity_providers SET sealed_client_secret = $2 WHERE id = $1",
            &[&id, &sealed],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
}

/// The IdP's secret as the bridge gets it (the tests' plaintext link shows secrets).
async fn secret_of(registry: &mut Registry, id: &str) -> Result<String, tonic::Status> {
    registry
        .client
        .get_identity_provider(pb::GetIdentityProviderRequest { id: id.into() })
        .await
        .map(|r| r.into_inner().client_secret)
}

/// The refusal of an IdP whose secret does not open: typed, naming the IdP, never a secret.
fn assert_unreadable(status: &tonic::Status, id: &str, reason: &str) {
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(error_code(status), "idp_secret_unreadable");
    let message = status.message();
    assert!(
        message.contains(&format!("identity provider {id} ")) && message.contains(reason),
        "{message}"
    );
    assert!(
        !message.contains(SECRET_A) && !message.contains(SECRET_B),
        "{message}"
    );
}

#[tokio::test]
async fn idp_secrets_are_sealed_at_rest_and_open_only_in_their_own_row() {
    let mut registry = Registry::start(&seed(BASIC_SECRET)).await;
    for secret in [SECRET_A, SECRET_B] {
        assert_eq!(
            tables_holding(&registry, secret).await,
            Vec::<String>::new(),
            "{secret} is stored in clear"
        );
    }
    let (sealed_a, clear) = stored(&registry, "idp-a").await;
    let sealed_a = sealed_a.unwrap();
    assert_eq!(clear, None);
    // No KEK configured: the development one, as `make run` and the tests on loopback.
    assert_eq!(
        envelope::kek_id_of(&sealed_a),
        Some(kek_id(DEVELOPMENT_KEK).as_str())
    );
    assert_eq!(secret_of(&mut registry, "idp-a").await.unwrap(), SECRET_A);
    let listed = registry
        .client
        .list_identity_providers(pb::ListIdentityProvidersRequest {})
        .await
        .unwrap()
        .into_inner()
        .identity_providers;
    let secrets: Vec<&str> = listed.iter().map(|i| i.client_secret.as_str()).collect();
    assert_eq!(secrets, [SECRET_A, SECRET_B]);
    // An operator changing an IdP's status is not shown its secret.
    let changed = registry
        .client
        .set_identity_provider_status(pb::SetStatusRequest {
            id: "idp-a".into(),
            status: pb::PartnerStatus::Active as i32,
            reason: "test".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (changed.id.as_str(), changed.client_secret.as_str()),
        ("idp-a", "")
    );

    // idp-a's envelope copied into idp-b's row: bound to idp-a, it does not open there.
    set_sealed(&registry, "idp-b", &sealed_a).await;
    let moved = secret_of(&mut registry, "idp-b").await.unwrap_err();
    assert_unreadable(&moved, "idp-b", "altered, or sealed for another key id");
    let listed = registry
        .client
        .list_identity_providers(pb::ListIdentityProvidersRequest {})
        .await
        .unwrap_err();
    assert_unreadable(&listed, "idp-b", "altered");
    assert_eq!(secret_of(&mut registry, "idp-a").await.unwrap(), SECRET_A);

    // Only that IdP fails: the registry restarts and serves the others.
    registry.restart(&seed_without_idps()).await;
    let moved = secret_of(&mut registry, "idp-b").await.unwrap_err();
    assert_unreadable(&moved, "idp-b", "altered");
    assert_eq!(secret_of(&mut registry, "idp-a").await.unwrap(), SECRET_A);
    assert_eq!(stored(&registry, "idp-b").await.0.unwrap(), sealed_a);

    // An altered envelope does not open either.
    let mut altered = sealed_a.clone().into_bytes();
    // Inside the ciphertext: the last character's spare bits would make it undecodable
    // (refused as not an envelope) rather than altered.
    let inside = altered.len() - 10;
    altered[inside] = if altered[inside] == b'A' { b'B' } else { b'A' };
    set_sealed(&registry, "idp-a", &String::from_utf8(altered).unwrap()).await;
    let refused = secret_of(&mut registry, "idp-a").await.unwrap_err();
    assert_unreadable(&refused, "idp-a", "altered");

    // The seed holds both secrets: it seals them again.
    registry.restart(&seed(BASIC_SECRET)).await;
    assert_eq!(secret_of(&mut registry, "idp-a").await.unwrap(), SECRET_A);
    assert_eq!(secret_of(&mut registry, "idp-b").await.unwrap(), SECRET_B);
    registry.stop().await;
}

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// A database as the release before V10 left it: IdPs' secrets in clear.
async fn store_of_v9(secrets: &[(&str, &str)]) -> TestDb {
    let db = TestDb::create().await;
    let config = DatabaseConfig {
        url: Secret::new(db.url()),
        pool_size: 1,
        ..DatabaseConfig::default()
    };
    let pool = relais_runtime::pg_pool(&config, relais_registry::SCHEMA)
        .await
        .unwrap();
    relais_runtime::migrate(
        &pool,
        relais_registry::SCHEMA,
        embedded::migrations::runner().set_target(refinery::Target::Version(9)),
    )
    .await
    .unwrap();
    let client = pool.get().await.unwrap();
    for (id, secret) in secrets {
        client
            .execute(
                "INSERT INTO identity_providers (id, name, issuer, client_id, client_secret, \
                 acr_values, scopes, token_endpoint_auth_method, status) VALUES ($1, $1, \
                 'https://idp.example', 'relais-hub', $2, '{eidas1}', '{openid}', \
                 'client_secret_basic', 'active')",
                &[id, secret],
            )
            .await
            .unwrap();
    }
    db
}

#[tokio::test]
async fn clear_secrets_of_an_earlier_release_are_sealed_at_the_first_start() {
    const LEGACY_A: &str = "legacy-clear-secret-of-idp-a-0123456789";
    const LEGACY_C: &str = "legacy-clear-secret-of-idp-c-0123456789";
    let db = store_of_v9(&[("idp-a", LEGACY_A), ("idp-c", LEGACY_C)]).await;
    // The seed names idp-a with its secret and not idp-c: both are sealed.
    let mut registry = Registry::start_on(
        db,
        &seed(BASIC_SECRET).replace(SECRET_A, LEGACY_A),
        keks(KEK_1, &[]),
    )
    .await;
    for secret in [LEGACY_A, LEGACY_C, SECRET_B] {
        assert_eq!(
            tables_holding(&registry, secret).await,
            Vec::<String>::new(),
            "{secret} is stored in clear"
        );
    }
    for (id, secret) in [
        ("idp-a", LEGACY_A),
        ("idp-c", LEGACY_C),
        ("idp-b", SECRET_B),
    ] {
        let (sealed, clear) = stored(&registry, id).await;
        assert_eq!(clear, None, "{id}");
        assert_eq!(
            envelope::kek_id_of(&sealed.unwrap()),
            Some(kek_id(KEK_1).as_str())
        );
        assert_eq!(secret_of(&mut registry, id).await.unwrap(), secret);
    }
    registry.stop().await;
}

#[tokio::test]
async fn another_kek_opens_nothing_and_a_kek_change_keeps_every_secret() {
    let mut registry = Registry::start_with(&seed(BASIC_SECRET), keks(KEK_1, &[])).await;
    let under_1 = stored(&registry, "idp-a").await.0.unwrap();

    // Another KEK alone: the start goes on, each IdP's secret is refused, none rewritten.
    registry
        .restart_with(&seed_without_idps(), keks(KEK_2, &[]))
        .await;
    for id in ["idp-a", "idp-b"] {
        let refused = secret_of(&mut registry, id).await.unwrap_err();
        assert_unreadable(&refused, id, "another key-encryption key");
    }
    assert_eq!(stored(&registry, "idp-a").await.0.unwrap(), under_1);

    // The new KEK with the old one among the others: opened and sealed again under it.
    registry
        .restart_with(&seed_without_idps(), keks(KEK_2, &[KEK_1]))
        .await;
    for id in ["idp-a", "idp-b"] {
        let sealed = stored(&registry, id).await.0.unwrap();
        assert_eq!(envelope::kek_id_of(&sealed), Some(kek_id(KEK_2).as_str()));
    }
    assert_eq!(secret_of(&mut registry, "idp-a").await.unwrap(), SECRET_A);

    // The old KEK removed: every secret still opens; the old KEK alone opens nothing.
    registry
        .restart_with(&seed_without_idps(), keks(KEK_2, &[]))
        .await;
    assert_eq!(secret_of(&mut registry, "idp-a").await.unwrap(), SECRET_A);
    assert_eq!(secret_of(&mut registry, "idp-b").await.unwrap(), SECRET_B);
    registry
        .restart_with(&seed_without_idps(), keks(KEK_1, &[]))
        .await;
    let refused = secret_of(&mut registry, "idp-a").await.unwrap_err();
    assert_unreadable(&refused, "idp-a", "another key-encryption key");
    registry.stop().await;
}

#[tokio::test]
async fn an_unchanged_seed_keeps_the_envelope_and_a_new_secret_is_sealed_anew() {
    let mut registry = Registry::start(&seed(BASIC_SECRET)).await;
    let first = stored(&registry, "idp-a").await.0.unwrap();
    registry.restart(&seed(BASIC_SECRET)).await;
    assert_eq!(stored(&registry, "idp-a").await.0.unwrap(), first);

    const NEW: &str = "hub-new-secret-at-idp-a";
    registry
        .restart(&seed(BASIC_SECRET).replace(SECRET_A, NEW))
        .await;
    assert_ne!(stored(&registry, "idp-a").await.0.unwrap(), first);
    assert_eq!(secret_of(&mut registry, "idp-a").await.unwrap(), NEW);
    assert_eq!(tables_holding(&registry, NEW).await, Vec::<String>::new());
    registry.stop().await;
}
