//! Random values, their stored hashes, per-SP subjects and PKCE.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// 32 bytes from the OS CSPRNG, base64url (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An access token: 32 random bytes (base64url, no `.` in it), then `.` and the client it
/// is issued to. The client part is no secret (the token is the client's own) and lets
/// userinfo know the SP, and prepare its answer, before it reads and records in one
/// statement; the token's hash, over all of it, is what is stored and looked up.
pub fn access_token_for(client_id: &str) -> String {
    format!("{}.{client_id}", random_token())
}

/// The client an access token names, if it has the form [`access_token_for`] makes
/// (tokens issued before it had none).
pub fn client_of_access_token(token: &str) -> Option<&str> {
    let (random, client) = token.split_once('.')?;
    (random.len() == 43 && relais_bus::events::is_partner_id(client)).then_some(client)
}

/// What is stored in place of a code, token or cookie value.
pub fn sha256(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

/// The per-SP subject (SUB FS): HMAC-SHA256 under the hub's key of the account and the
/// SP's sector, hex. Stable for one person at one sector, unlinkable across sectors.
pub fn subject_for(key: &[u8], account_id: &str, sector: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(account_id.as_bytes());
    // A separator that cannot occur in a UUID keeps (account, sector) pairs distinct.
    mac.update(b"\x00");
    mac.update(sector.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// RFC 7636 S256: base64url(SHA-256(verifier)).
pub fn pkce_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// OIDC `at_hash`: left half of SHA-256 of the access token (ES256 and RS256 both use it).
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_access_token_names_its_client_after_its_random_part() {
        let token = access_token_for("sp.example-1");
        assert_eq!(client_of_access_token(&token), Some("sp.example-1"));
        assert_eq!(token.split_once('.').map(|(r, _)| r.len()), Some(43));
        // Tokens of the earlier form, and values that only look like one, name nobody.
        assert_eq!(client_of_access_token(&random_token()), None);
        assert_eq!(client_of_access_token("short.sp-a"), None);
        let bad = format!("{}.sp a", random_token());
        assert_eq!(client_of_access_token(&bad), None);
        assert_eq!(
            client_of_access_token(&format!("{}.", random_token())),
            None
        );
    }
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
    }

    #[test]
    fn subjects_differ_per_sector_and_are_stable() {
        let k = b"0123456789abcdef0123456789abcdef";
        let s1 = subject_for(k, "acc-1", "sp-a");
        assert_eq!(s1, subject_for(k, "acc-1", "sp-a"));
        assert_ne!(s1, subject_for(k, "acc-1", "sp-b"));
        assert_ne!(s1, subject_for(k, "acc-2", "sp-a"));
        assert_ne!(
            s1,
            subject_for(b"another key another key another!", "acc-1", "sp-a")
        );
        assert_eq!(s1.len(), 64);
        assert!(!s1.contains("acc-1"));
    }

    #[test]
    fn pkce_matches_rfc7636_example() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
