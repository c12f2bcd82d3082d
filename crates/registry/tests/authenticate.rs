#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use relais_proto::registry::v1::registry_client::RegistryClient;
use relais_proto::registry::v1::{AuthenticateClientRequest, ServiceProvider};
use tonic::{Code, Status, transport::Channel};

use crate::common::{BASIC_SECRET, POST_SECRET, Registry, error_code, seed};

pub async fn authenticate(
    client: &mut RegistryClient<Channel>,
    client_id: &str,
    secret: &str,
    method: &str,
) -> Result<ServiceProvider, Status> {
    client
        .authenticate_client(AuthenticateClientRequest {
            client_id: client_id.into(),
            client_secret: secret.into(),
            method: method.into(),
        })
        .await
        .map(|r| r.into_inner().service_provider.unwrap())
}

#[tokio::test]
async fn the_right_secret_with_the_registered_method_passes() {
    let mut registry = Registry::start(&seed(BASIC_SECRET)).await;
    let client = &mut registry.client;

    let sp = authenticate(client, "sp-basic", BASIC_SECRET, "client_secret_basic")
        .await
        .unwrap();
    assert_eq!(sp.client_id, "sp-basic");
    assert_eq!(sp.idp_ids, ["idp-a", "idp-b"]);
    let sp = authenticate(client, "sp-post", POST_SECRET, "client_secret_post")
        .await
        .unwrap();
    assert_eq!(sp.client_id, "sp-post");

    registry.stop().await;
}

#[tokio::test]
async fn a_wrong_secret_and_an_unknown_client_are_refused_alike() {
    let mut registry = Registry::start(&seed(BASIC_SECRET)).await;
    let client = &mut registry.client;

    let wrong = authenticate(
        client,
        "sp-basic",
        &format!("{BASIC_SECRET}x"),
        "client_secret_basic",
    )
    .await
    .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert_eq!(error_code(&wrong), "client_authentication_failed");

    // Another SP's secret is a wrong secret too.
    let other = authenticate(client, "sp-basic", POST_SECRET, "client_secret_basic")
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::Unauthenticated);
    assert_eq!(error_code(&other), "client_authentication_failed");

    let unknown = authenticate(client, "sp-nope", BASIC_SECRET, "client_secret_basic")
        .await
        .unwrap_err();
    // Nothing tells the caller whether the client exists.
    assert_eq!(unknown.code(), wrong.code());
    assert_eq!(unknown.message(), wrong.message());
    assert_eq!(error_code(&unknown), error_code(&wrong));

    registry.stop().await;
}

#[tokio::test]
async fn the_right_secret_with_another_method_is_refused() {
    let mut registry = Registry::start(&seed(BASIC_SECRET)).await;
    let client = &mut registry.client;

    let basic_as_post = authenticate(client, "sp-basic", BASIC_SECRET, "client_secret_post")
        .await
        .unwrap_err();
    assert_eq!(basic_as_post.code(), Code::Unauthenticated);
    assert_eq!(error_code(&basic_as_post), "client_auth_method_mismatch");
    assert!(
        basic_as_post.message().contains("client_secret_basic"),
        "{}",
        basic_as_post.message()
    );

    let post_as_basic = authenticate(client, "sp-post", POST_SECRET, "client_secret_basic")
        .await
        .unwrap_err();
    assert_eq!(error_code(&post_as_basic), "client_auth_method_mismatch");

    // A wrong secret is a wrong secret, whatever the method: no hint about the method.
    let wrong_both = authenticate(client, "sp-basic", POST_SECRET, "client_secret_post")
        .await
        .unwrap_err();
    assert_eq!(error_code(&wrong_both), "client_authentication_failed");

    registry.stop().await;
}

#[tokio::test]
async fn an_expired_secret_is_refused() {
    let mut registry = Registry::start(&seed(BASIC_SECRET)).await;
    authenticate(
        &mut registry.client,
        "sp-basic",
        BASIC_SECRET,
        "client_secret_basic",
    )
    .await
    .unwrap();

    registry
        .execute(
            "UPDATE service_providers SET secret_expires_at = now() - interval '1 second' \
             WHERE client_id = $1",
            "sp-basic",
        )
        .await;

    let expired = authenticate(
        &mut registry.client,
        "sp-basic",
        BASIC_SECRET,
        "client_secret_basic",
    )
    .await
    .unwrap_err();
    assert_eq!(expired.code(), Code::Unauthenticated);
    assert_eq!(error_code(&expired), "client_secret_expired");
    // Only to the holder of the secret: a wrong one still learns nothing.
    let wrong = authenticate(
        &mut registry.client,
        "sp-basic",
        POST_SECRET,
        "client_secret_basic",
    )
    .await
    .unwrap_err();
    assert_eq!(error_code(&wrong), "client_authentication_failed");
    // The other SP is unaffected.
    authenticate(
        &mut registry.client,
        "sp-post",
        POST_SECRET,
        "client_secret_post",
    )
    .await
    .unwrap();

    registry.stop().await;
}

#[tokio::test]
async fn rotation_gives_a_new_strong_secret_and_an_overlap() {
    use relais_proto::registry::v1::RotateClientSecretRequest;
    let mut registry = Registry::start(&seed(BASIC_SECRET)).await;
    let client = &mut registry.client;
    let rotated = client
        .rotate_client_secret(RotateClientSecretRequest {
            client_id: "sp-basic".into(),
            overlap_seconds: 3600,
        })
        .await
        .unwrap()
        .into_inner();
    let new = rotated.client_secret.clone();
    assert!(new.len() >= 43, "256 bits at least: {new}");
    assert_ne!(new, BASIC_SECRET);
    assert!(!rotated.previous_expires_at.is_empty());
    // Both work during the overlap; each answer says until when (what a cache may keep).
    let mut until = Vec::new();
    for secret in [new.as_str(), BASIC_SECRET] {
        let answer = client
            .authenticate_client(AuthenticateClientRequest {
                client_id: "sp-basic".into(),
                client_secret: secret.into(),
                method: "client_secret_basic".into(),
            })
            .await
            .unwrap()
            .into_inner();
        until.push(answer.secret_expires_at);
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        until[0] > now + 365 * 86_400,
        "a new secret lasts years: {until:?}"
    );
    assert!(
        (now + 3590..=now + 3610).contains(&until[1]),
        "the old one lasts the overlap: {until:?}"
    );
    // A second rotation with no overlap (a leaked secret): only the newest works.
    let leaked = client
        .rotate_client_secret(RotateClientSecretRequest {
            client_id: "sp-basic".into(),
            overlap_seconds: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .client_secret;
    assert_ne!(leaked, new);
    for old in [new.as_str(), BASIC_SECRET] {
        let refused = authenticate(client, "sp-basic", old, "client_secret_basic")
            .await
            .unwrap_err();
        assert!(
            matches!(
                error_code(&refused),
                "client_authentication_failed" | "client_secret_expired"
            ),
            "{refused:?}"
        );
    }
    authenticate(client, "sp-basic", &leaked, "client_secret_basic")
        .await
        .unwrap();
    let unknown = client
        .rotate_client_secret(RotateClientSecretRequest {
            client_id: "nobody".into(),
            overlap_seconds: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    registry.stop().await;
}
