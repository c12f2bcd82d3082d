//! Any token-endpoint credentials: an Authorization header and a form, never a panic,
//! never two ways at once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relais_oidc_front::domain::authorize::Params;
use relais_oidc_front::domain::client_auth::client_credentials;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (header, form) = text.split_once('\n').unwrap_or((&text, ""));
    let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(form) else {
        return;
    };
    let params = Params::new(pairs);
    if let Ok((id, _, method)) = client_credentials(header, &params) {
        assert!(!id.is_empty() || method != "private_key_jwt");
        if method == "client_secret_post" {
            assert!(!header.trim().starts_with("Basic "));
        }
    }
});
