//! The hub's signing keys, run as a deployment runs them: `relais admin rotate-keys` over
//! mTLS against separate processes and a second replica, tokens signed before the rotation
//! still verifying (with `jsonwebtoken`), and a front refusing to start with another
//! key-encryption key.

use std::time::Duration;

use relais_config::Secret;
use reqwest::StatusCode;

use crate::harness::*;

const KEK: &str = "e2e-key-encryption-key-0123456789-0123456789";

/// An ID token of SP A, from a sign-in at the hub, redeemed at `token_at` (the hub or a
/// replica).
async fn id_token(stack: &Stack, token_at: &str) -> String {
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid");
    let code = code_of_sign_in(stack, &Browser::new(), &req, "jean").await;
    let (status, tokens) = token(token_at, SP_A, SECRET_A, &code, REDIRECT_A, true).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens["id_token"].as_str().unwrap().to_string()
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn published(hub: &str) -> String {
    reqwest::get(format!("{hub}/jwks"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// `token` checked with `jsonwebtoken` against `jwks` (a replica's), from `issuer`.
fn verify_against(jwks: &str, issuer: &str, token: &str) {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(jwks).unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = set
        .find(&kid(token))
        .expect("kid not in the replica's JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[SP_A]);
    validation.set_issuer(&[issuer]);
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_rotate_keys_every_replica_follows_and_earlier_tokens_still_verify() {
    let stack = Stack::start_with(Options {
        mode: Mode::Processes,
        tweak: |c| {
            c.oidc_front.key_encryption_key = Secret::new(KEK);
            c.oidc_front.jwks_cache_seconds = 1;
            c.oidc_front.signing_keys_reload_seconds = 1;
        },
        ..Options::default()
    })
    .await;
    let replica = stack.replica().await;
    let before = id_token(&stack, &stack.hub).await;
    let old = kid(&before);
    let jwks = reqwest::get(format!("{}/jwks", stack.hub)).await.unwrap();
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=1");

    let (ok, out) = stack.admin(&["rotate-keys"]).await;
    assert!(ok, "{out}");
    let new = out
        .lines()
        .find_map(|l| l.strip_prefix("ES256 "))
        .and_then(|l| l.split(':').next())
        .unwrap_or_else(|| panic!("no new ES256 key in {out}"))
        .to_string();
    assert!(out.contains("RS256 "), "{out}");
    assert!(out.contains(&format!("replaces {old}")), "{out}");
    // Published at once by the front that rotated, within a reload by the other.
    assert!(published(&stack.hub).await.contains(&new));
    let mut seen = false;
    for _ in 0..50 {
        if published(&replica.hub).await.contains(&new) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the replica did not publish the new key");

    // It signs once the JWKS cache time and a reload have passed, at both replicas.
    let mut signed = None;
    for _ in 0..40 {
        let t = id_token(&stack, &replica.hub).await;
        if kid(&t) == new {
            signed = Some(t);
            break;
        }
        assert_eq!(kid(&t), old, "signed by neither key");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let after_at_replica = signed.expect("the new key never signed");
    let after = id_token(&stack, &stack.hub).await;
    assert_eq!(kid(&after), new);
    // The token signed before the rotation still verifies: its key stays published.
    for t in [&before, &after, &after_at_replica] {
        verify_id_token(&stack.hub, t, SP_A).await;
        verify_against(&published(&replica.hub).await, &stack.hub, t);
    }

    // A front given another key-encryption key refuses to start, naming why.
    let mut c = stack.config().clone();
    c.oidc_front.key_encryption_key = Secret::new("another-e2e-key-encryption-key-0123456789-01");
    c.oidc_front.listen = "127.0.0.1:0".into();
    let file = std::env::temp_dir().join(format!("relais-keys-{}.toml", random()));
    std::fs::write(&file, toml::to_string(&c).unwrap()).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_relais"))
            .arg("oidc-front")
            .arg("--config")
            .arg(&file)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the front started with another key-encryption key")
    .unwrap();
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("cannot be opened") && text.contains("another key-encryption key"),
        "{text}"
    );
    drop(replica);
    stack.stop().await;
}

#[tokio::test]
async fn check_config_names_a_development_or_short_key_off_loopback() {
    let dir = std::env::temp_dir().join(format!("relais-check-keys-{}", random()));
    std::fs::create_dir_all(&dir).unwrap();
    let kek_file = dir.join("kek");
    let strong = "Yq3m8Vt2Lr5Nw9Bx1Kc7Hf4Jd6Gs0Pz2Qa8Ue5Ri3To";
    // The proof store's checkpoint key is the deployment's own here
    // (`access::off_loopback_checkpoints_need_a_key_of_their_own_which_admin_makes`).
    let checkpoint_key = dir.join("checkpoint.key");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(["admin", "checkpoint-key", checkpoint_key.to_str().unwrap()])
        .env_remove("RELAIS_CONFIG")
        .env("RELAIS__TRACE__ORIGIN", "relais.example/trace")
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let run = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_relais"));
        // Defaults and these variables only (no deployment's file), off loopback.
        cmd.arg("check-config")
            .env_remove("RELAIS_CONFIG")
            .env("RELAIS__TRACE__ORIGIN", "relais.example/trace")
            .env("RELAIS__TRACE__CHECKPOINT_KEY_FILE", &checkpoint_key)
            .env("RELAIS__GATEWAY__ALLOW_PLAIN_HTTP", "true")
            .env("RELAIS__OIDC_FRONT__ISSUER", "https://relais.example")
            .env("RELAIS__GATEWAY__PUBLIC_URL", "https://relais.example")
            .env("RELAIS__GRPC__CA_FILE", "/etc/relais/ca.pem")
            .env("RELAIS__GRPC__CERT_FILE", "/etc/relais/{service}.pem")
            .env("RELAIS__GRPC__KEY_FILE", "/etc/relais/{service}.key");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let keys = [
        ("RELAIS__OIDC_FRONT__SUBJECT_KEY", "oidc_front.subject_key"),
        ("RELAIS__OIDC_FRONT__FLOW_KEYS", "oidc_front.flow_keys"),
        (
            "RELAIS__REGISTRY__SECRET_HASH_KEY",
            "registry.secret_hash_key",
        ),
        (
            "RELAIS__IDP_BRIDGE__ROUND_TRIP_KEYS",
            "idp_bridge.round_trip_keys",
        ),
        (
            "RELAIS__REGISTRY__KEY_ENCRYPTION_KEY",
            "registry.key_encryption_key",
        ),
        (
            "RELAIS__OIDC_FRONT__KEY_ENCRYPTION_KEY",
            "oidc_front.key_encryption_key",
        ),
    ];
    let list = format!("[\"{strong}\"]");
    let value = |var: &str| {
        if var.ends_with("_KEYS") {
            list.clone()
        } else {
            strong.to_string()
        }
    };
    // Each development default named in turn, until every key is the deployment's own.
    for (i, (_, field)) in keys.iter().enumerate() {
        let set: Vec<(&str, String)> = keys[..i].iter().map(|(v, _)| (*v, value(v))).collect();
        let env: Vec<(&str, &str)> = set.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (ok, out) = run(&env);
        assert!(!ok && out.contains(field), "{field}: {out}");
        assert!(out.contains("development key"), "{out}");
        // A key of 32 characters carries fewer than 256 bits.
        let mut short = env.clone();
        let (var, _) = keys[i];
        let weak = if var.ends_with("_KEYS") {
            "[\"only-thirty-two-characters-long!\"]"
        } else {
            "only-thirty-two-characters-long!"
        };
        short.push((var, weak));
        let (ok, out) = run(&short);
        assert!(
            !ok && out.contains(field) && out.contains("bits"),
            "{field}: {out}"
        );
    }
    let all: Vec<(&str, String)> = keys.iter().map(|(v, _)| (*v, value(v))).collect();
    let mut env: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (ok, out) = run(&env);
    assert!(ok, "{out}");
    // The account page's secrets, when set, are held to the same rule (the demo's included).
    for (var, field, demo, short, own) in [
        (
            "RELAIS__GATEWAY__ACCOUNT_CLIENT_SECRET",
            "gateway.account_client_secret",
            "demo-account-page-secret-not-for-production-01".to_string(),
            "only-thirty-two-characters-long!".to_string(),
            strong.to_string(),
        ),
        (
            "RELAIS__GATEWAY__ACCOUNT_COOKIE_SECRETS",
            "gateway.account_cookie_secrets",
            "[\"demo-account-cookies-not-for-production-000\"]".to_string(),
            "[\"only-thirty-two-characters-long!\"]".to_string(),
            list.clone(),
        ),
    ] {
        for (value, why) in [(&demo, "development key"), (&short, "bits")] {
            let mut with = env.clone();
            with.push((var, value));
            let (ok, out) = run(&with);
            assert!(
                !ok && out.contains(field) && out.contains(why),
                "{field}: {out}"
            );
        }
        let mut with = env.clone();
        with.push((var, &own));
        let (ok, out) = run(&with);
        assert!(ok, "{field}: {out}");
    }
    // The key-encryption key from a file: read, and checked like the others.
    env.pop();
    let path = kek_file.display().to_string();
    env.push(("RELAIS__OIDC_FRONT__KEY_ENCRYPTION_KEY_FILE", &path));
    let (ok, out) = run(&env);
    assert!(
        !ok && out.contains("oidc_front.key_encryption_key_file"),
        "{out}"
    );
    std::fs::write(&kek_file, "change-me-key-encryption-key-0123456789abcdef\n").unwrap();
    let (ok, out) = run(&env);
    assert!(
        !ok && out.contains("oidc_front.key_encryption_key_file"),
        "{out}"
    );
    std::fs::write(&kek_file, format!("{strong}\n")).unwrap();
    let (ok, out) = run(&env);
    assert!(ok, "{out}");
    // The registry's from a file too, checked the same way.
    env.retain(|(k, _)| *k != "RELAIS__REGISTRY__KEY_ENCRYPTION_KEY");
    let registry_kek = dir.join("registry-kek");
    let registry_path = registry_kek.display().to_string();
    env.push(("RELAIS__REGISTRY__KEY_ENCRYPTION_KEY_FILE", &registry_path));
    let (ok, out) = run(&env);
    assert!(
        !ok && out.contains("registry.key_encryption_key_file"),
        "{out}"
    );
    std::fs::write(
        &registry_kek,
        "change-me-key-encryption-key-0123456789abcdef\n",
    )
    .unwrap();
    let (ok, out) = run(&env);
    assert!(
        !ok && out.contains("registry.key_encryption_key_file") && out.contains("development key"),
        "{out}"
    );
    std::fs::write(&registry_kek, format!("{strong}\n")).unwrap();
    let (ok, out) = run(&env);
    assert!(ok, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
