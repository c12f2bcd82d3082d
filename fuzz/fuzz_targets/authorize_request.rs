//! Any authorization request: parsing and validation never panic, and what passes is
//! within the rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relais_oidc_front::domain::acr::AcrLadder;
use relais_oidc_front::domain::authorize::{self, Params};
use relais_oidc_front::domain::types::RedirectUri;
use relais_proto::registry::v1::ServiceProvider;

fuzz_target!(|data: &[u8]| {
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(data) else {
        return;
    };
    let params = Params::new(pairs);
    let sp = ServiceProvider {
        client_id: "sp".into(),
        redirect_uris: vec!["https://sp.example/cb".into()],
        scopes: vec!["openid".into(), "email".into()],
        acr_values: vec!["eidas1".into(), "eidas2".into()],
        ..Default::default()
    };
    let ladder = AcrLadder::new(vec!["eidas1".into(), "eidas2".into(), "eidas3".into()]);
    let _ = authorize::locale(&params, "fr");
    if let Ok((_, redirect_uri)) = authorize::client_and_redirect(&params)
        && let Ok(redirect_uri) = RedirectUri::parse(redirect_uri)
        && let Ok(r) = authorize::validate(&params, &sp, redirect_uri, &ladder)
    {
        assert!(r.state.len() >= authorize::MIN_RANDOM_LEN);
        assert!(r.nonce.len() >= authorize::MIN_RANDOM_LEN);
        assert!(r.scopes.has_openid());
        assert!(r.acr_min.is_among(&sp.acr_values));
        // The SP is not exempt: nothing passes without PKCE.
        assert!(r.code_challenge.is_some());
    }
});
