//! IdPs' client secrets at rest: each sealed under the registry's key-encryption key
//! (envelope encryption, `relais_jose::envelope`), the IdP's id bound as associated data
//! so that an envelope moved to another IdP's row does not open. Opened only for the
//! bridge, the one service that authenticates to IdPs.

use relais_jose::envelope::{self, Keks};
use subtle::ConstantTimeEq;

use crate::RegistryError;

/// Bound with the IdP's id: nothing else sealed under the same KEK opens as a secret.
const PURPOSE: &str = "idp client secret";

pub fn seal(keks: &Keks, idp_id: &str, secret: &str) -> Result<String, RegistryError> {
    envelope::seal(keks.current.as_ref(), secret.as_bytes(), &[PURPOSE, idp_id]).map_err(|e| {
        RegistryError::Sealing(format!("client secret of identity provider {idp_id}: {e}"))
    })
}

/// The secret in `sealed`, opened with whichever configured KEK it names.
pub fn open(keks: &Keks, idp_id: &str, sealed: &str) -> Result<String, RegistryError> {
    let unreadable = |reason: String| RegistryError::IdpSecretUnreadable {
        idp: idp_id.to_string(),
        reason,
    };
    let plain = envelope::open(keks.for_envelope(sealed), sealed, &[PURPOSE, idp_id])
        .map_err(|e| unreadable(e.to_string()))?;
    String::from_utf8(plain).map_err(|_| unreadable("not text".into()))
}

/// Whether `sealed` is under the KEK that seals now.
pub fn under_current(keks: &Keks, sealed: &str) -> bool {
    envelope::kek_id_of(sealed) == Some(keks.current.kek_id())
}

/// `sealed` if it opens to `secret` under the current KEK (so that an unchanged seed
/// changes no row), a new envelope of `secret` otherwise.
pub fn reseal_if_changed(
    keks: &Keks,
    idp_id: &str,
    sealed: Option<&str>,
    secret: &str,
) -> Result<String, RegistryError> {
    if let Some(sealed) = sealed.filter(|s| under_current(keks, s))
        && let Ok(stored) = open(keks, idp_id, sealed)
        && bool::from(stored.as_bytes().ct_eq(secret.as_bytes()))
    {
        return Ok(sealed.to_string());
    }
    seal(keks, idp_id, secret)
}
