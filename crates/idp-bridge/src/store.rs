//! SQL of the bridge's own schema.

use deadpool_postgres::Pool;
use relais_bus::Event;
use relais_bus::Outbox;
use relais_runtime::Prepared;
use time::OffsetDateTime;

use crate::error::BridgeError;

#[derive(Clone, Debug)]
pub struct RoundTrip {
    pub flow_id: String,
    pub idp_id: String,
    pub sp_id: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub acr_values: Vec<String>,
    pub required_claims: Vec<String>,
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    outbox: Outbox,
}

impl Store {
    pub fn new(pool: Pool, outbox: Outbox) -> Self {
        Store { pool, outbox }
    }

    pub async fn insert(
        &self,
        state_hash: &[u8],
        trip: &RoundTrip,
        expires_at: OffsetDateTime,
        events: &[Event],
    ) -> Result<(), BridgeError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.run(
            "INSERT INTO round_trips (state_hash, flow_id, idp_id, sp_id, nonce, pkce_verifier, \
             acr_values, required_claims, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &state_hash,
                &trip.flow_id,
                &trip.idp_id,
                &trip.sp_id,
                &trip.nonce,
                &trip.pkce_verifier,
                &trip.acr_values,
                &trip.required_claims,
                &expires_at,
            ],
        )
        .await?;
        relais_bus::enqueue_all(&tx, events).await?;
        self.outbox.commit(tx).await?;
        Ok(())
    }

    /// Takes the live round trip of this state for this flow, once.
    pub async fn take(
        &self,
        state_hash: &[u8],
        flow_id: &str,
    ) -> Result<Option<RoundTrip>, BridgeError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE round_trips SET used_at = now() \
                 WHERE state_hash = $1 AND flow_id = $2 AND used_at IS NULL \
                 AND expires_at > now() \
                 RETURNING flow_id, idp_id, sp_id, nonce, pkce_verifier, acr_values, \
                 required_claims",
            )
            .await?;
        let Some(r) = client.query_opt(&stmt, &[&state_hash, &flow_id]).await? else {
            return Ok(None);
        };
        Ok(Some(RoundTrip {
            flow_id: r.try_get(0)?,
            idp_id: r.try_get(1)?,
            sp_id: r.try_get(2)?,
            nonce: r.try_get(3)?,
            pkce_verifier: r.try_get(4)?,
            acr_values: r.try_get(5)?,
            required_claims: r.try_get(6)?,
        }))
    }

    pub async fn record(&self, events: &[Event]) -> Result<(), BridgeError> {
        let client = self.pool.get().await?;
        relais_bus::enqueue_all(&client, events).await?;
        self.outbox.wake();
        Ok(())
    }

    pub async fn purge_expired(&self) -> Result<u64, BridgeError> {
        let client = self.pool.get().await?;
        Ok(client
            .run(
                "DELETE FROM round_trips WHERE expires_at < now() - interval '1 hour'",
                &[],
            )
            .await?)
    }
}
