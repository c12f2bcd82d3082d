//! Any compact token or JWKS: parsing and verification never panic, and nothing
//! verifies against keys that did not sign it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use relais_jose::{Alg, KeySet, SigningKey};

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = SigningKey::generate(Alg::Es256).expect("a key");
        KeySet::from_signing_keys([&key]).expect("a key set")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = relais_jose::decode_header(&text);
    let _ = relais_jose::decode_claims_unverified(&text);
    let _ = KeySet::from_jwks_json(&text);
    // The key set's private key is gone: no input can be a valid signature.
    assert!(keys().verify(&text).is_err());
});
