//! The signing keys at rest and across a rotation: sealed under the key-encryption key
//! (no private member in any table, another KEK or an altered envelope refuses the start),
//! published before they sign, kept published until the tokens they signed have expired,
//! followed by every replica without a restart; tokens checked with `jsonwebtoken`, not
//! the hub's JOSE code.

use std::sync::Arc;

use relais_config::Secret;
use relais_jose::LocalKek;
use relais_jose::envelope;
use relais_oidc_front::clock::{Clock, ManualClock, SystemClock};
use relais_oidc_front::{FrontError, OidcFrontConfig};
use relais_proto::oidc_front::v1 as pb;
use relais_proto::oidc_front::v1::oidc_front_client::OidcFrontClient;
use relais_runtime::GrpcChannel;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::support::{HUB, Hub, SP, query, redirect_of};

const KEK: &str = "front-test-key-encryption-key-0123456789-0123";
const OTHER_KEK: &str = "another-key-encryption-key-0123456789-0123456";

fn with_kek(c: &mut OidcFrontConfig) {
    c.key_encryption_key = Secret::new(KEK);
}

/// A whole sign-in of the SP: its ID token (ES256).
async fn id_token(hub: &Hub) -> String {
    let (at_idp, flow) = hub.choose(&hub.authorize(&[]).await).await;
    let answer = hub.at_idp(&at_idp, "jean").await;
    let back = redirect_of(&hub.callback(&flow, &answer).await).unwrap();
    let (status, tokens) = hub.token(&query(&back)["code"]).await;
    assert_eq!(status, 200, "{tokens}");
    tokens["id_token"].as_str().unwrap().to_string()
}

async fn jwks(front: &OidcFrontClient<GrpcChannel>) -> String {
    front
        .clone()
        .jwks(pb::Empty {})
        .await
        .unwrap()
        .into_inner()
        .json
}

fn kids(jwks: &str) -> Vec<String> {
    let doc: Value = serde_json::from_str(jwks).unwrap();
    doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// Verifies `token` against `jwks` with `jsonwebtoken`; its expiry against the front's
/// clock (not the system's).
fn verify_elsewhere(jwks: &str, token: &str, now: OffsetDateTime) -> Value {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(jwks).unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = set
        .find(header.kid.as_deref().unwrap())
        .expect("the token's kid is not in the JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[SP]);
    validation.set_issuer(&[HUB]);
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap()
        .claims;
    assert!(claims["exp"].as_i64().unwrap() > now.unix_timestamp());
    claims
}

fn exp_of(token: &str) -> OffsetDateTime {
    let claims = relais_jose::decode_claims_unverified(token).unwrap();
    OffsetDateTime::from_unix_timestamp(claims["exp"].as_i64().unwrap()).unwrap()
}

/// The stored keys: kid, alg, the clear column, the sealed one.
async fn stored(hub: &Hub) -> Vec<(String, String, Option<String>, Option<String>)> {
    let client = hub.sql.get().await.unwrap();
    client
        .query(
            "SELECT kid, alg, private_jwk, sealed_jwk FROM signing_keys ORDER BY alg",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_are_sealed_at_rest_and_another_kek_or_an_altered_one_refuses_the_start() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let hub = Hub::start_with(Arc::clone(&clock), with_kek).await;
    let kek = LocalKek::new(KEK).unwrap();
    let keys = stored(&hub).await;
    assert_eq!(keys.len(), 2, "one key per algorithm");
    for (kid, alg, clear, sealed) in &keys {
        assert_eq!(clear, &None, "{alg} key stored in clear");
        let sealed = sealed.as_deref().unwrap();
        assert!(!sealed.contains("\"d\""), "{sealed}");
        let jwk: Value =
            serde_json::from_slice(&envelope::open(&kek, sealed, &[kid, alg]).unwrap()).unwrap();
        // No private member of the key anywhere in the front's tables.
        for member in ["d", "p", "q", "dp", "dq", "qi"] {
            if let Some(value) = jwk[member].as_str() {
                assert_eq!(
                    hub.stored_anywhere(value).await,
                    Vec::<String>::new(),
                    "{alg} {member}"
                );
            }
        }
    }

    for other in [OTHER_KEK, ""] {
        // Another KEK, or none (the development one): the keys do not open.
        let config = OidcFrontConfig {
            key_encryption_key: Secret::new(other),
            ..hub.config.clone()
        };
        let err = hub
            .another_front(config, Arc::clone(&clock))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(err, FrontError::SigningKeyUnreadable { .. }),
            "{err}"
        );
        assert_eq!(err.code(), "signing_key_unreadable");
        assert!(
            err.to_string().contains("another key-encryption key"),
            "{err}"
        );
    }

    // One character of the ES256 envelope changed.
    let (kid, _, _, sealed) = &keys[0];
    let sealed = sealed.as_deref().unwrap();
    let mut altered = sealed.as_bytes().to_vec();
    let i = altered.len() - 10;
    altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let client = hub.sql.get().await.unwrap();
    let set = "UPDATE signing_keys SET sealed_jwk = $2, private_jwk = $3 WHERE kid = $1";
    client
        .execute(set, &[kid, &altered, &None::<String>])
        .await
        .unwrap();
    let err = hub
        .another_front(hub.config.clone(), Arc::clone(&clock))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, FrontError::SigningKeyUnreadable { kid: k, .. } if k == kid),
        "{err}"
    );
    assert!(err.to_string().contains("altered"), "{err}");

    // A key an earlier release stored in clear is sealed at the next start.
    let clear = String::from_utf8(envelope::open(&kek, sealed, &[kid, "ES256"]).unwrap()).unwrap();
    client
        .execute(set, &[kid, &None::<String>, &clear])
        .await
        .unwrap();
    let (_, tasks) = hub
        .another_front(hub.config.clone(), Arc::clone(&clock))
        .await
        .unwrap();
    tasks.shutdown(std::time::Duration::from_secs(5)).await;
    let (_, _, clear, sealed) = &stored(&hub).await[0];
    assert_eq!(clear, &None);
    envelope::open(&kek, sealed.as_deref().unwrap(), &[kid, "ES256"]).unwrap();
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_signed_before_a_rotation_verifies_after_it_and_the_old_key_leaves_once_its_tokens_expired()
 {
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let hub = Hub::start_with(clock.clone(), with_kek).await;
    let before = id_token(&hub).await;
    let old = kid_of(&before);
    let published = hub
        .front
        .clone()
        .jwks(pb::Empty {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.max_age_seconds, 300, "the cache time announced");
    verify_elsewhere(&published.json, &before, clock.now());

    let rotated = hub
        .operator
        .clone()
        .rotate_keys(pb::Empty {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    let es = rotated.iter().find(|k| k.alg == "ES256").unwrap();
    assert_eq!(es.replaced_kids, vec![old.clone()]);
    let signs_from = OffsetDateTime::parse(&es.signs_from, &Rfc3339).unwrap();
    let retire_at = OffsetDateTime::parse(&es.replaced_retire_at, &Rfc3339).unwrap();
    // Published for the JWKS cache time and a reload of every replica before it signs.
    assert!(signs_from - clock.now() >= Duration::seconds(300 + 60));
    assert!(
        retire_at - signs_from >= Duration::seconds(1800),
        "the longest token"
    );

    // In the JWKS before it signs; the old key still signs.
    assert!(kids(&jwks(&hub.front).await).contains(&es.kid));
    let last_of_old = id_token(&hub).await;
    assert_eq!(kid_of(&last_of_old), old);

    clock.advance(signs_from - clock.now());
    let after = id_token(&hub).await;
    assert_eq!(kid_of(&after), es.kid, "the new key signs from its instant");
    let both = jwks(&hub.front).await;
    verify_elsewhere(&both, &before, clock.now());
    verify_elsewhere(&both, &last_of_old, clock.now());
    verify_elsewhere(&both, &after, clock.now());

    // Every token of the old key has expired before it leaves the JWKS.
    assert!(exp_of(&last_of_old) <= retire_at);
    clock.advance(retire_at - clock.now() - Duration::seconds(1));
    assert!(kids(&jwks(&hub.front).await).contains(&old));
    clock.advance(Duration::seconds(1));
    let later = kids(&jwks(&hub.front).await);
    assert!(!later.contains(&old), "{later:?}");
    assert!(later.contains(&es.kid));
    let rs = rotated.iter().find(|k| k.alg == "RS256").unwrap();
    assert!(later.contains(&rs.kid));
    assert_eq!(later.len(), 2, "{later:?}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_publishes_the_same_keys_and_follows_a_rotation_without_a_restart() {
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let hub = Hub::start_with(clock.clone(), |c| {
        with_kek(c);
        c.signing_keys_reload_seconds = 1;
    })
    .await;
    let (other, tasks) = hub
        .another_front(hub.config.clone(), clock.clone())
        .await
        .unwrap();
    assert_eq!(jwks(&hub.front).await, jwks(&other).await);
    let rotated = hub
        .operator
        .clone()
        .rotate_keys(pb::Empty {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    let signs_from = OffsetDateTime::parse(&rotated[0].signs_from, &Rfc3339).unwrap();
    assert!(signs_from - clock.now() >= Duration::seconds(300 + 1));
    // The other replica reads the keys again within its reload time.
    let mut followed = false;
    for _ in 0..50 {
        let seen = kids(&jwks(&other).await);
        if rotated.iter().all(|k| seen.contains(&k.kid)) {
            followed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(followed, "the other replica did not read the new keys");
    assert_eq!(
        sorted(kids(&jwks(&hub.front).await)),
        sorted(kids(&jwks(&other).await))
    );
    tasks.shutdown(std::time::Duration::from_secs(5)).await;
    hub.stop().await;
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kek_changes_without_losing_a_key_and_the_old_one_then_opens_nothing() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let hub = Hub::start_with(Arc::clone(&clock), with_kek).await;
    let before = jwks(&hub.front).await;
    let kids_before: Vec<String> = stored(&hub).await.into_iter().map(|k| k.0).collect();
    let with = |kek: &str, others: &[&str]| OidcFrontConfig {
        key_encryption_key: Secret::new(kek),
        other_key_encryption_keys: others.iter().map(|k| Secret::new(*k)).collect(),
        ..hub.config.clone()
    };

    // The new KEK seals, the old one still opens: every key sealed again under the new.
    let (other, tasks) = hub
        .another_front(with(OTHER_KEK, &[KEK]), Arc::clone(&clock))
        .await
        .unwrap();
    assert_eq!(jwks(&other).await, before, "the same keys");
    tasks.shutdown(std::time::Duration::from_secs(5)).await;
    let new = LocalKek::new(OTHER_KEK).unwrap();
    let keys = stored(&hub).await;
    assert_eq!(
        keys.iter().map(|k| k.0.clone()).collect::<Vec<_>>(),
        kids_before
    );
    for (kid, alg, clear, sealed) in &keys {
        assert_eq!(clear, &None);
        let sealed = sealed.as_deref().unwrap();
        assert_eq!(
            envelope::kek_id_of(sealed),
            Some(relais_jose::KeyWrap::kek_id(&new))
        );
        envelope::open(&new, sealed, &[kid, alg]).unwrap();
    }

    // The old KEK alone no longer opens them; the new one alone does.
    let err = hub
        .another_front(with(KEK, &[]), Arc::clone(&clock))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, FrontError::SigningKeyUnreadable { .. }),
        "{err}"
    );
    let (_, tasks) = hub
        .another_front(with(OTHER_KEK, &[]), Arc::clone(&clock))
        .await
        .unwrap();
    tasks.shutdown(std::time::Duration::from_secs(5)).await;
    hub.stop().await;
}
