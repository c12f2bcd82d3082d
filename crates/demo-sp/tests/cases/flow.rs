//! A complete sign-in and logout through both demo servers.

use reqwest::StatusCode;
use url::Url;

use super::support::{Stack, location};

#[tokio::test]
async fn sign_in_shows_the_claims_then_logout_round_trips() {
    let stack = Stack::start().await;
    let home = stack.get(&stack.sp_url("/")).await.text().await.unwrap();
    assert!(home.contains("<html lang=\"fr\">"));
    assert!(home.contains("Se connecter avec Relais"));
    assert!(home.contains("<label for=\"idp_hint\">"));

    let query = [
        ("scope", "openid given_name usual_name email chorusdt siret"),
        ("acr_values", "eidas2"),
        ("login_hint", "jean.dupont@demo-idp.test"),
        ("idp_hint", "demo-idp"),
    ];
    // What the SP asks for, as the provider sees it.
    let authorize = Url::parse(&stack.start_login(&query).await).unwrap();
    let params: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    assert_eq!(params["acr_values"], "eidas2");
    assert_eq!(params["login_hint"], "jean.dupont@demo-idp.test");
    assert_eq!(params["idp_hint"], "demo-idp");
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["redirect_uri"], stack.sp.redirect_uri());
    assert!(params["state"].len() >= 43, "32 random bytes");
    assert!(params["nonce"].len() >= 43, "32 random bytes");
    assert!(params["scope"].split(' ').any(|s| s == "chorusdt"));

    let callback = stack.sign_in(&query, "jean", "none").await;
    assert_eq!(callback.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&callback), "/");

    let page = stack.get(&stack.sp_url("/")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("Bonjour Jean Pierre Dupont"), "{page}");
    assert!(page.contains("acr obtenu : <strong>eidas2</strong>"));
    for shown in [
        "chorusdt:matricule",
        "USER_JDP",
        "usual_name",
        "13000201700015",
        "jean.dupont@demo-idp.test",
    ] {
        assert!(page.contains(shown), "{shown} missing");
    }
    assert!(
        page.contains("&quot;alg&quot;: &quot;ES256&quot;"),
        "decoded header"
    );
    assert!(page.contains("&quot;nonce&quot;"), "decoded payload");

    let logout = stack
        .browser
        .post(stack.sp_url("/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    let end_session = Url::parse(&location(&logout)).unwrap();
    assert_eq!(
        end_session.as_str().split('?').next().unwrap(),
        format!("{}/end_session", stack.idp.issuer())
    );
    let params: std::collections::HashMap<_, _> = end_session.query_pairs().into_owned().collect();
    assert_eq!(
        params["post_logout_redirect_uri"],
        stack.sp.post_logout_redirect_uri()
    );
    assert!(params.contains_key("id_token_hint") && params.contains_key("state"));

    let back = stack.get(end_session.as_str()).await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    let logged_out = stack.get(&location(&back)).await;
    assert_eq!(logged_out.status(), StatusCode::OK);
    assert!(
        logged_out
            .text()
            .await
            .unwrap()
            .contains("Vous êtes déconnecté")
    );

    let home = stack.get(&stack.sp_url("/")).await.text().await.unwrap();
    assert!(
        home.contains("Se connecter avec Relais"),
        "signed out locally too"
    );

    // The logout state is single use.
    let replay = stack.get(&location(&back)).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn default_settings_sign_in_with_the_configured_scopes() {
    let stack = Stack::start().await;
    let callback = stack.sign_in(&[], "marie-helene", "none").await;
    assert_eq!(callback.status(), StatusCode::SEE_OTHER);
    let page = stack.get(&stack.sp_url("/")).await.text().await.unwrap();
    assert!(page.contains("Bonjour Marie-Hélène Lefèvre"), "{page}");
    assert!(
        page.contains("Lefèvre-Durand"),
        "family_name is a default scope"
    );
    assert!(!page.contains("USER_MHL"), "chorusdt was not asked");
}

/// The back-channel logout endpoint signs nobody out on a token it cannot trust: none at
/// all, an unsigned one, or the user's own ID token replayed (signed by the provider,
/// for this SP, but with a nonce and no logout event).
#[tokio::test]
async fn a_logout_token_that_is_not_one_signs_nobody_out() {
    use base64::Engine as _;
    let stack = Stack::start().await;
    let query = [("scope", "openid given_name usual_name")];
    stack.sign_in(&query, "jean", "none").await;
    let page = stack.get(&stack.sp_url("/")).await.text().await.unwrap();
    let id_token = page
        .split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
        .find(|w| w.starts_with("eyJ") && w.matches('.').count() == 2)
        .expect("the raw ID token on the page")
        .to_owned();
    let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let unsigned = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"logout+jwt"}"#),
        b64(
            r#"{"sub":"x","sid":"y","jti":"j","events":{"http://schemas.openid.net/event/backchannel-logout":{}}}"#
        )
    );
    let http = reqwest::Client::new();
    for (what, form) in [
        ("no token", vec![]),
        ("unsigned", vec![("logout_token", unsigned.as_str())]),
        ("an ID token", vec![("logout_token", id_token.as_str())]),
    ] {
        let r = http
            .post(stack.sp_url("/backchannel-logout"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{what}");
    }
    let page = stack.get(&stack.sp_url("/")).await.text().await.unwrap();
    assert!(page.contains("Bonjour"), "signed out by a forged token");
}

/// A logout token the provider signed for this SP's session signs that browser out, once:
/// the same token again is refused (its `jti` was seen).
#[tokio::test]
async fn the_providers_logout_token_signs_the_session_out_once() {
    use base64::Engine as _;
    let stack = Stack::start().await;
    stack
        .sign_in(&[("scope", "openid given_name usual_name")], "jean", "none")
        .await;
    let page = stack.get(&stack.sp_url("/")).await.text().await.unwrap();
    assert!(page.contains("Bonjour"), "{page}");
    let id_token = page
        .split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
        .find(|w| w.starts_with("eyJ") && w.matches('.').count() == 2)
        .expect("the raw ID token on the page")
        .to_owned();
    let payload = id_token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let logout = serde_json::json!({
        "iss": stack.idp.issuer(),
        "aud": claims["aud"],
        "iat": now,
        "exp": now + 120,
        "jti": format!("logout-{now}-{}", claims["sid"]),
        "sid": claims["sid"],
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    let token = stack
        .idp
        .sign(logout.as_object().unwrap().clone(), "logout+jwt")
        .unwrap();
    let http = reqwest::Client::new();
    let send = || {
        http.post(stack.sp_url("/backchannel-logout"))
            .form(&[("logout_token", token.as_str())])
            .send()
    };
    let r = send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let home = stack.get(&stack.sp_url("/")).await.text().await.unwrap();
    assert!(
        home.contains("Se connecter avec Relais"),
        "still signed in: {home}"
    );
    let again = send().await.unwrap();
    assert_eq!(
        again.status(),
        StatusCode::BAD_REQUEST,
        "a replayed logout token"
    );
}
