//! The signing keys' life: generated (RSA in a blocking thread: it takes a CPU for a
//! while), sealed under the key-encryption key before they are stored, opened at start
//! (a key that does not open stops the start, naming it), read again periodically so
//! every replica follows a rotation, and rotated on an operator's demand with overlap.

use std::sync::Arc;

use relais_jose::envelope::{self, KeyWrap};
use relais_jose::{Alg, SigningKey};
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::error::FrontError;
use crate::keys::{Keys, LiveKey, Rotation};
use crate::store::{NewKey, Store, StoredKey};

/// The algorithms the hub signs with, each with its own keys.
pub const ALGS: [Alg; 2] = [Alg::Es256, Alg::Rs256];

/// One key added by a rotation.
#[derive(Debug)]
pub struct Rotated {
    pub alg: Alg,
    pub kid: String,
    /// Published from now, signing from then.
    pub activates_at: OffsetDateTime,
    /// The keys it replaces, and when they leave the JWKS.
    pub replaced: Vec<String>,
    pub replaced_retire_at: OffsetDateTime,
}

pub use relais_jose::envelope::Keks;

pub struct SigningKeys {
    store: Store,
    keks: Keks,
    keys: Arc<Keys>,
    rotation: Rotation,
    clock: Arc<dyn Clock>,
}

impl SigningKeys {
    /// The keys in force: a first key of each algorithm is made if there is none, and a
    /// key an earlier release stored in clear, or sealed under another KEK, is sealed
    /// under the current one.
    pub async fn load(
        store: Store,
        keks: Keks,
        rotation: Rotation,
        clock: Arc<dyn Clock>,
    ) -> Result<SigningKeys, FrontError> {
        for alg in ALGS {
            if store.has_current_signing_key(alg).await? {
                continue;
            }
            let key = generate(alg).await?;
            let sealed = seal(keks.current.as_ref(), &key)?;
            // No JWKS of this hub is cached anywhere yet: the first key signs at once.
            let added = store
                .add_first_signing_key(&NewKey {
                    kid: key.kid(),
                    alg,
                    sealed_jwk: &sealed,
                    activates_at: clock.now(),
                })
                .await?;
            if added {
                tracing::info!(alg = %alg, kid = key.kid(), "first signing key made");
            }
        }
        let live = open_all(&store, &keks, &[], true).await?;
        let keys = Arc::new(Keys::new(live, Arc::clone(&clock))?);
        Ok(SigningKeys {
            store,
            keks,
            keys,
            rotation,
            clock,
        })
    }

    pub fn keys(&self) -> Arc<Keys> {
        Arc::clone(&self.keys)
    }

    /// Reads the keys again (opening only those not held yet; a key under another KEK is
    /// sealed again only at start, so that replicas between two KEKs do not take turns).
    pub async fn reload(&self) -> Result<(), FrontError> {
        let live = open_all(&self.store, &self.keks, &self.keys.loaded(), false).await?;
        self.keys.replace(live)
    }

    /// A new key for each algorithm: published now, signing once every replica and every
    /// cached JWKS has it; the keys it replaces stay published until their tokens expire.
    pub async fn rotate(&self) -> Result<Vec<Rotated>, FrontError> {
        let mut done = Vec::new();
        for alg in ALGS {
            let key = generate(alg).await?;
            let sealed = seal(self.keks.current.as_ref(), &key)?;
            let (activates_at, retire_at) = self.rotation.schedule(self.clock.now());
            let replaced = self
                .store
                .add_rotated_signing_key(
                    &NewKey {
                        kid: key.kid(),
                        alg,
                        sealed_jwk: &sealed,
                        activates_at,
                    },
                    retire_at,
                )
                .await?;
            tracing::info!(alg = %alg, kid = key.kid(), ?replaced, "signing key rotated");
            done.push(Rotated {
                alg,
                kid: key.kid().to_string(),
                activates_at,
                replaced,
                replaced_retire_at: retire_at,
            });
        }
        // This replica publishes the new keys at once; the others at their next reload.
        self.reload().await?;
        Ok(done)
    }
}

async fn generate(alg: Alg) -> Result<SigningKey, FrontError> {
    tokio::task::spawn_blocking(move || SigningKey::generate(alg))
        .await
        .map_err(|e| FrontError::Internal(format!("key generation: {e}")))?
        .map_err(FrontError::from)
}

fn seal(kek: &dyn KeyWrap, key: &SigningKey) -> Result<String, FrontError> {
    envelope::seal(
        kek,
        key.private_jwk_json().as_bytes(),
        &[key.kid(), key.alg().as_str()],
    )
    .map_err(|e| FrontError::Internal(format!("sealing signing key {}: {e}", key.kid())))
}

/// Every stored key in force, opened (or taken from `held` when already open); with
/// `reseal`, one under another KEK is sealed again under the current one.
async fn open_all(
    store: &Store,
    keks: &Keks,
    held: &[LiveKey],
    reseal: bool,
) -> Result<Vec<LiveKey>, FrontError> {
    let current = keks.current.as_ref();
    let mut live = Vec::new();
    for row in store.signing_keys().await? {
        let key = match held.iter().find(|k| k.key.kid() == row.kid) {
            Some(k) => Arc::clone(&k.key),
            None => {
                let kek = row
                    .sealed_jwk
                    .as_deref()
                    .map_or(current, |s| keks.for_envelope(s));
                Arc::new(open(kek, &row)?)
            }
        };
        match row.sealed_jwk.as_deref().map(envelope::kek_id_of) {
            None => {
                // A key of an earlier release, stored in clear: sealed from now on.
                store
                    .seal_signing_key(&row.kid, &seal(current, &key)?)
                    .await?;
                tracing::info!(kid = %row.kid, "signing key stored in clear is now sealed");
            }
            Some(id) if reseal && id != Some(current.kek_id()) => {
                store
                    .seal_signing_key(&row.kid, &seal(current, &key)?)
                    .await?;
                tracing::info!(kid = %row.kid, "signing key sealed again under the current KEK");
            }
            Some(_) => {}
        }
        live.push(LiveKey {
            key,
            activates_at: row.activates_at,
            retires_at: row.retires_at,
        });
    }
    Ok(live)
}

fn open(kek: &dyn KeyWrap, row: &StoredKey) -> Result<SigningKey, FrontError> {
    let unreadable = |reason: String| FrontError::SigningKeyUnreadable {
        kid: row.kid.clone(),
        reason,
    };
    let alg = Alg::parse(&row.alg).map_err(|e| unreadable(e.to_string()))?;
    let json = match (&row.sealed_jwk, &row.clear_jwk) {
        (Some(sealed), _) => {
            let plain = envelope::open(kek, sealed, &[&row.kid, alg.as_str()])
                .map_err(|e| unreadable(e.to_string()))?;
            String::from_utf8(plain).map_err(|_| unreadable("not a JWK".into()))?
        }
        (None, Some(clear)) => clear.clone(),
        (None, None) => return Err(unreadable("no private key stored".into())),
    };
    let key = SigningKey::from_json(alg, &json).map_err(|e| unreadable(e.to_string()))?;
    // The kid is the key's thumbprint: a row holding another key is refused.
    if key.kid() != row.kid {
        return Err(unreadable("the key is not the one its kid names".into()));
    }
    Ok(key)
}
