//! The nominal authorization code flow with PKCE, end to end.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::CACHE_CONTROL;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::support::{CLIENT_ID, REDIRECT_URI, SECRET, TestIdp, location};

#[tokio::test]
async fn discovery_is_truthful() {
    let idp = TestIdp::start().await;
    let discovery: Value = idp
        .http
        .get(idp.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issuer = idp.handle.issuer();
    assert_eq!(issuer, format!("http://{}", idp.handle.local_addr()));
    assert_eq!(discovery["issuer"], issuer);
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
        ("end_session_endpoint", "/end_session"),
    ] {
        assert_eq!(discovery[field], format!("{issuer}{path}"), "{field}");
    }
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        json!(["ES256", "HS256"])
    );
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(
        discovery["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        discovery["acr_values_supported"],
        json!(["eidas1", "eidas2", "eidas3"])
    );
    let claims = discovery["claims_supported"].as_array().unwrap();
    for claim in [
        "usual_name",
        "chorusdt:matricule",
        "birthcountry",
        "siret",
        "acr",
        "amr",
    ] {
        assert!(claims.contains(&json!(claim)), "{claim}");
    }
    let scopes = discovery["scopes_supported"].as_array().unwrap();
    for scope in [
        "openid",
        "profile",
        "phone",
        "chorusdt",
        "belonging_population",
    ] {
        assert!(scopes.contains(&json!(scope)), "{scope}");
    }
}

#[tokio::test]
async fn code_flow_with_pkce_gives_a_verifiable_id_token_and_userinfo() {
    let idp = TestIdp::start().await;
    let verifier = "a-pkce-verifier-that-is-long-enough-0123456789";
    let (html, request_id) = idp
        .login_page(
            &[
                ("login_hint", "karim.benali@demo-idp.test"),
                ("sp_name", "Mairie de Testville"),
                ("sp_id", "sp-42"),
                ("acr_values", "eidas2"),
                ("prompt", "login"),
            ],
            verifier,
        )
        .await;
    assert!(html.contains("<html lang=\"fr\">"));
    assert!(html.contains("Vous vous connectez à Mairie de Testville"));
    assert!(
        html.contains("value=\"karim\" checked"),
        "login_hint preselects"
    );
    assert!(html.contains("<label for=\"identity-karim\">"));
    assert!(html.contains("<label for=\"scenario\">"));

    let response = idp.submit(&request_id, "karim", Some("none")).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (url, query) = location(&response);
    assert!(url.as_str().starts_with(REDIRECT_URI));
    assert_eq!(query["state"], "state-123");
    assert_eq!(query["iss"], idp.handle.issuer());

    let response = idp.token(&query["code"], Some(verifier)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    let access_token = tokens["access_token"].as_str().unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();

    let claims = idp.verify(id_token).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(claims["iss"], idp.handle.issuer());
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["nonce"], "nonce-456");
    assert_eq!(claims["acr"], "eidas2");
    assert_eq!(claims["amr"], json!(["pwd", "otp"]));
    assert_eq!(claims["sub"], "a3e8c1d5b7f94e2a8d6c0f1b3e5a7c45");
    assert_eq!(claims["given_name"], "Karim");
    assert!(claims["exp"].as_i64().unwrap() > now);
    assert!(claims["iat"].as_i64().unwrap() <= now + 1);
    assert!(claims["auth_time"].as_i64().unwrap() <= now + 1);
    assert!(!claims["sid"].as_str().unwrap().is_empty());
    let digest = Sha256::digest(access_token.as_bytes());
    assert_eq!(claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..16]));

    let userinfo: Value = idp.userinfo(access_token).await.json().await.unwrap();
    assert_eq!(
        userinfo,
        json!({
            "sub": "a3e8c1d5b7f94e2a8d6c0f1b3e5a7c45",
            "given_name": "Karim",
            "usual_name": "Benali",
            "email": "karim.benali@demo-idp.test",
        })
    );
    let by_post = idp
        .http
        .post(idp.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_post.status(), StatusCode::OK);
    let missing = idp.http.get(idp.url("/userinfo")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert!(
        missing.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
}

#[tokio::test]
async fn scopes_release_both_claim_sets() {
    let idp = TestIdp::start().await;
    let scope = "openid profile email uid siren siret organizational_unit belonging_population \
                 phone chorusdt birthplace birthcountry usual_name";
    let tokens = idp.tokens("marie-helene", None, &[("scope", scope)]).await;
    let userinfo: Value = idp
        .userinfo(tokens["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    for (claim, value) in [
        ("given_name", "Marie-Hélène"),
        ("family_name", "Lefèvre-Durand"),
        ("usual_name", "Lefèvre"),
        ("preferred_username", "Lefèvre"),
        ("birthdate", "1969-07-21"),
        ("gender", "female"),
        ("birthplace", "33063"),
        ("birthcountry", "99100"),
        ("siren", "180030017"),
        ("siret", "18003001700016"),
        ("phone_number", "+33 1 23 45 67 04"),
        ("chorusdt:matricule", "USER_MHL"),
        ("chorusdt:societe", "IGA"),
        ("uid", "mhlefevre"),
        ("organizational_unit", "Inspection générale"),
        ("belonging_population", "agent"),
    ] {
        assert_eq!(userinfo[claim], value, "{claim}");
    }
    let claims = idp
        .verify(tokens["id_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims["acr"], "eidas3");
    assert_eq!(claims["amr"], json!(["smartcard"]));
}

#[tokio::test]
async fn client_secret_post_is_accepted() {
    let idp = TestIdp::start().await;
    let login = idp.login("camille", None, &[]).await;
    let response = idp
        .http
        .post(idp.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", login.code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", login.verifier.as_str()),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    let claims = idp
        .verify(tokens["id_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims["acr"], "eidas1");
    assert_eq!(claims["amr"], json!(["pwd"]));
}

#[tokio::test]
async fn stops_on_request() {
    let idp = TestIdp::start().await;
    let url = idp.url("/jwks");
    idp.handle.stop().await.unwrap();
    assert!(reqwest::get(url).await.is_err());
}
