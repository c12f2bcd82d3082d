//! SQL of the signing keys: stored sealed, several per algorithm, with the instants they
//! sign from and leave the JWKS at. Additions are serialised by one advisory lock, so two
//! replicas starting together, or two rotations at once, cannot both add a key.

use deadpool_postgres::Transaction;
use relais_jose::Alg;
use relais_runtime::Prepared;
use time::OffsetDateTime;

use super::Store;
use crate::error::FrontError;

/// One stored key: its private JWK sealed, or in clear for a key of an earlier release
/// not sealed yet.
#[derive(Debug)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub sealed_jwk: Option<String>,
    pub clear_jwk: Option<String>,
    pub activates_at: OffsetDateTime,
    pub retires_at: Option<OffsetDateTime>,
}

/// A new key to store, already sealed.
pub struct NewKey<'a> {
    pub kid: &'a str,
    pub alg: Alg,
    pub sealed_jwk: &'a str,
    pub activates_at: OffsetDateTime,
}

/// The key of the advisory lock taken while keys are added ("relais keys").
const KEYS_LOCK: i64 = 0x7265_6c61_6973_6b65;

impl Store {
    /// The keys not retired at `now`.
    pub async fn signing_keys(&self) -> Result<Vec<StoredKey>, FrontError> {
        let client = self.pool.get().await?;
        let rows = client
            .all(
                "SELECT kid, alg, sealed_jwk, private_jwk, activates_at, retires_at \
                 FROM signing_keys WHERE retires_at IS NULL OR retires_at > $1 \
                 ORDER BY activates_at, kid",
                &[&self.clock.now()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredKey {
                    kid: r.try_get(0)?,
                    alg: r.try_get(1)?,
                    sealed_jwk: r.try_get(2)?,
                    clear_jwk: r.try_get(3)?,
                    activates_at: r.try_get(4)?,
                    retires_at: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Replaces a key kept in clear by its envelope.
    pub async fn seal_signing_key(&self, kid: &str, sealed_jwk: &str) -> Result<(), FrontError> {
        let client = self.pool.get().await?;
        client
            .run(
                "UPDATE signing_keys SET sealed_jwk = $2, private_jwk = NULL WHERE kid = $1",
                &[&kid, &sealed_jwk],
            )
            .await?;
        Ok(())
    }

    /// Whether `alg` has a key that no newer one replaces (the one a start needs).
    pub async fn has_current_signing_key(&self, alg: Alg) -> Result<bool, FrontError> {
        let client = self.pool.get().await?;
        Ok(client
            .opt(
                "SELECT 1 FROM signing_keys WHERE alg = $1 AND retires_at IS NULL LIMIT 1",
                &[&alg.as_str()],
            )
            .await?
            .is_some())
    }

    /// Stores the first key of its algorithm, unless another replica stored one first
    /// (false then).
    pub async fn add_first_signing_key(&self, key: &NewKey<'_>) -> Result<bool, FrontError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        lock(&tx).await?;
        let exists = tx
            .opt(
                "SELECT 1 FROM signing_keys WHERE alg = $1 AND retires_at IS NULL LIMIT 1",
                &[&key.alg.as_str()],
            )
            .await?
            .is_some();
        if !exists {
            insert(&tx, key).await?;
        }
        tx.commit().await?;
        Ok(!exists)
    }

    /// Stores a key replacing every current key of its algorithm, which leave the JWKS at
    /// `retire_at`; the kids so replaced.
    pub async fn add_rotated_signing_key(
        &self,
        key: &NewKey<'_>,
        retire_at: OffsetDateTime,
    ) -> Result<Vec<String>, FrontError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        lock(&tx).await?;
        let replaced = tx
            .all(
                "UPDATE signing_keys SET retires_at = $2 WHERE alg = $1 AND retires_at IS NULL \
                 RETURNING kid",
                &[&key.alg.as_str(), &retire_at],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<Vec<String>, _>>()?;
        insert(&tx, key).await?;
        tx.commit().await?;
        Ok(replaced)
    }

    /// Deletes the keys retired at `now`: their private halves are no longer needed.
    pub async fn delete_retired_signing_keys(&self) -> Result<u64, FrontError> {
        let client = self.pool.get().await?;
        Ok(client
            .run(
                "DELETE FROM signing_keys WHERE retires_at <= $1",
                &[&self.clock.now()],
            )
            .await?)
    }
}

async fn lock(tx: &Transaction<'_>) -> Result<(), FrontError> {
    tx.run("SELECT pg_advisory_xact_lock($1)", &[&KEYS_LOCK])
        .await?;
    Ok(())
}

async fn insert(tx: &Transaction<'_>, key: &NewKey<'_>) -> Result<(), FrontError> {
    tx.run(
        "INSERT INTO signing_keys (kid, alg, sealed_jwk, activates_at) VALUES ($1, $2, $3, $4)",
        &[
            &key.kid,
            &key.alg.as_str(),
            &key.sealed_jwk,
            &key.activates_at,
        ],
    )
    .await?;
    Ok(())
}
