//! SQL of the registry's own schema.

use std::sync::Arc;

use deadpool_postgres::Pool;
use relais_bus::Event;
use relais_bus::Outbox;
use relais_bus::events::{PartnerEvent, PartnerKind, PartnerStatus};
use relais_jose::Alg;
use relais_jose::envelope::Keks;
use relais_proto::registry::v1 as pb;
use relais_runtime::Prepared;
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::RegistryError;
use crate::domain::{IdentityProviderSeed, PersonSeed, SecretHasher, ServiceProviderSeed};
use crate::secrets;

/// A service provider with its stored secret hash.
#[derive(Clone, Debug)]
pub struct StoredSp {
    pub sp: pb::ServiceProvider,
    pub secret_hash: Vec<u8>,
    pub secret_expires_at: OffsetDateTime,
    pub previous_secret_hash: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<OffsetDateTime>,
}

/// An identity provider with its client secret as stored: `idp.client_secret` is empty,
/// the secret is in `sealed_secret` (an envelope) and opens only for the bridge.
#[derive(Clone, Debug)]
pub struct StoredIdp {
    pub idp: pb::IdentityProvider,
    pub sealed_secret: Option<String>,
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    outbox: Outbox,
    keks: Arc<Keks>,
}

const SP_COLUMNS: &str = "client_id, name, sector_identifier, secret_hash, secret_expires_at, \
    previous_secret_hash, previous_secret_expires_at, \
    redirect_uris, post_logout_redirect_uris, scopes, claims, acr_values, idp_ids, \
    id_token_signed_response_alg, token_endpoint_auth_method, status, jwks, \
    userinfo_signed_response_alg, id_token_encrypted_response_alg, \
    id_token_encrypted_response_enc, userinfo_encrypted_response_alg, \
    userinfo_encrypted_response_enc, sso, sso_acr_values, min_random_length, \
    backchannel_logout_uri, pkce_exempt";
const IDP_COLUMNS: &str = "id, name, issuer, client_id, sealed_client_secret, acr_values, \
    scopes, token_endpoint_auth_method, status";

/// A `status` column's text (its CHECK admits only the statuses there are).
fn stored_status(text: &str) -> Result<PartnerStatus, RegistryError> {
    PartnerStatus::parse(text)
        .ok_or_else(|| RegistryError::Database(format!("unknown partner status {text:?}")))
}

fn sp_from_row(row: &Row) -> Result<StoredSp, RegistryError> {
    let status: String = row.try_get("status")?;
    Ok(StoredSp {
        sp: pb::ServiceProvider {
            client_id: row.try_get("client_id")?,
            name: row.try_get("name")?,
            sector_identifier: row.try_get("sector_identifier")?,
            redirect_uris: row.try_get("redirect_uris")?,
            post_logout_redirect_uris: row.try_get("post_logout_redirect_uris")?,
            scopes: row.try_get("scopes")?,
            claims: row.try_get("claims")?,
            acr_values: row.try_get("acr_values")?,
            idp_ids: row.try_get("idp_ids")?,
            id_token_signed_response_alg: row.try_get("id_token_signed_response_alg")?,
            token_endpoint_auth_method: row.try_get("token_endpoint_auth_method")?,
            status: stored_status(&status)?.to_proto(),
            jwks: row.try_get("jwks")?,
            userinfo_signed_response_alg: row.try_get("userinfo_signed_response_alg")?,
            id_token_encrypted_response_alg: row.try_get("id_token_encrypted_response_alg")?,
            id_token_encrypted_response_enc: row.try_get("id_token_encrypted_response_enc")?,
            userinfo_encrypted_response_alg: row.try_get("userinfo_encrypted_response_alg")?,
            userinfo_encrypted_response_enc: row.try_get("userinfo_encrypted_response_enc")?,
            sso: row.try_get("sso")?,
            sso_acr_values: row.try_get("sso_acr_values")?,
            min_random_length: u32::try_from(row.try_get::<_, i32>("min_random_length")?)
                .unwrap_or(crate::domain::DEFAULT_MIN_RANDOM_LENGTH),
            backchannel_logout_uri: row
                .try_get::<_, Option<String>>("backchannel_logout_uri")?
                .unwrap_or_default(),
            pkce_exempt: row.try_get("pkce_exempt")?,
        },
        secret_hash: row.try_get("secret_hash")?,
        secret_expires_at: row.try_get("secret_expires_at")?,
        previous_secret_hash: row.try_get("previous_secret_hash")?,
        previous_secret_expires_at: row.try_get("previous_secret_expires_at")?,
    })
}

fn idp_from_row(row: &Row) -> Result<StoredIdp, RegistryError> {
    let status: String = row.try_get("status")?;
    Ok(StoredIdp {
        idp: pb::IdentityProvider {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            issuer: row.try_get("issuer")?,
            client_id: row.try_get("client_id")?,
            client_secret: String::new(),
            acr_values: row.try_get("acr_values")?,
            scopes: row.try_get("scopes")?,
            token_endpoint_auth_method: row.try_get("token_endpoint_auth_method")?,
            status: stored_status(&status)?.to_proto(),
        },
        sealed_secret: row.try_get("sealed_client_secret")?,
    })
}

/// With an encryption algorithm and no content encryption, A256GCM.
fn enc_or_default(alg: &str, enc: &str) -> String {
    if !alg.is_empty() && enc.is_empty() {
        "A256GCM".into()
    } else {
        enc.to_string()
    }
}

fn partner_event(
    kind: PartnerKind,
    id: &str,
    status: PartnerStatus,
) -> Result<Event, RegistryError> {
    let payload = PartnerEvent {
        partner: kind,
        partner_id: id.to_string(),
        status,
    };
    Event::from_payload("registry", &payload).map_err(|e| RegistryError::Bus(e.to_string()))
}

impl Store {
    pub fn new(pool: Pool, outbox: Outbox, keks: Arc<Keks>) -> Self {
        Store { pool, outbox, keks }
    }

    /// At start: a secret an earlier release stored in clear, or one sealed under another
    /// configured KEK, is sealed under the current one. One that does not open (another
    /// KEK, altered, moved) is left as it is and named in the log: only that IdP fails
    /// (`idp_secret_unreadable`) until the seed or the right KEK repairs it; every other
    /// partner keeps being served.
    pub async fn seal_idp_secrets(&self) -> Result<(), RegistryError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let rows = tx
            .all(
                "SELECT id, client_secret, sealed_client_secret FROM identity_providers \
                 ORDER BY id FOR UPDATE",
                &[],
            )
            .await?;
        for row in rows {
            let id: String = row.try_get(0)?;
            let clear: Option<String> = row.try_get(1)?;
            let sealed: Option<String> = row.try_get(2)?;
            let secret = match (clear, sealed) {
                (Some(clear), _) => clear,
                (None, Some(sealed)) => match secrets::open(&self.keks, &id, &sealed) {
                    Ok(_) if secrets::under_current(&self.keks, &sealed) => continue,
                    Ok(secret) => secret,
                    Err(e) => {
                        tracing::error!(idp = %id, error = %e, "identity provider secret unreadable");
                        continue;
                    }
                },
                (None, None) => continue,
            };
            tx.run(
                "UPDATE identity_providers SET sealed_client_secret = $2, client_secret = NULL \
                 WHERE id = $1",
                &[&id, &secrets::seal(&self.keks, &id, &secret)?],
            )
            .await?;
            tracing::info!(idp = %id, kek = self.keks.current.kek_id(), "identity provider secret sealed");
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn service_provider(&self, client_id: &str) -> Result<StoredSp, RegistryError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {SP_COLUMNS} FROM service_providers WHERE client_id = $1"
            ))
            .await?;
        let row = client
            .query_opt(&stmt, &[&client_id])
            .await?
            .ok_or(RegistryError::UnknownClient)?;
        sp_from_row(&row)
    }

    pub async fn identity_provider(&self, id: &str) -> Result<StoredIdp, RegistryError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {IDP_COLUMNS} FROM identity_providers WHERE id = $1"
            ))
            .await?;
        let row = client
            .query_opt(&stmt, &[&id])
            .await?
            .ok_or(RegistryError::UnknownIdp)?;
        idp_from_row(&row)
    }

    pub async fn identity_providers(&self) -> Result<Vec<StoredIdp>, RegistryError> {
        let client = self.pool.get().await?;
        let rows = client
            .all(
                &format!("SELECT {IDP_COLUMNS} FROM identity_providers ORDER BY id"),
                &[],
            )
            .await?;
        rows.iter().map(idp_from_row).collect()
    }

    /// Creates or updates the seeded partners; an SP's secret is re-hashed (and its
    /// validity restarted) only when it changed. A seed's status applies only to a new
    /// partner: a restart must never lift an operator's suspension. Only a partner that
    /// is new or changed is announced: a restart with 10,000 SPs unchanged says nothing.
    pub async fn apply_seed(
        &self,
        idps: &[IdentityProviderSeed],
        sps: &[ServiceProviderSeed],
        people: &[PersonSeed],
        hasher: &SecretHasher,
        secret_lifetime_days: u32,
    ) -> Result<(), RegistryError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        for idp in idps {
            let stored: Option<String> = tx
                .opt(
                    "SELECT sealed_client_secret FROM identity_providers WHERE id = $1 FOR UPDATE",
                    &[&idp.id],
                )
                .await?
                .map(|r| r.try_get(0))
                .transpose()?
                .flatten();
            // The stored envelope when it still holds the seed's secret: no change to announce.
            let sealed = secrets::reseal_if_changed(
                &self.keks,
                &idp.id,
                stored.as_deref(),
                &idp.client_secret,
            )?;
            let changed = tx
                .run(
                    "INSERT INTO identity_providers (id, name, issuer, client_id, \
                 sealed_client_secret, acr_values, scopes, token_endpoint_auth_method, status) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (id) DO UPDATE SET name = $2, issuer = $3, client_id = $4, \
                 client_secret = NULL, sealed_client_secret = $5, acr_values = $6, scopes = $7, \
                 token_endpoint_auth_method = $8, updated_at = now() \
                 WHERE (identity_providers.name, identity_providers.issuer, \
                   identity_providers.client_id, identity_providers.client_secret, \
                   identity_providers.sealed_client_secret, identity_providers.acr_values, \
                   identity_providers.scopes, identity_providers.token_endpoint_auth_method) \
                   IS DISTINCT FROM ($2, $3, $4, NULL::text, $5, $6, $7, $8)",
                    &[
                        &idp.id,
                        &idp.name,
                        &idp.issuer,
                        &idp.client_id,
                        &sealed,
                        &idp.acr_values,
                        &idp.scopes,
                        &idp.token_endpoint_auth_method,
                        &idp.status.as_str(),
                    ],
                )
                .await?;
            if changed == 0 {
                continue;
            }
            relais_bus::enqueue(&tx, &partner_event(PartnerKind::Idp, &idp.id, idp.status)?)
                .await
                .map_err(|e| RegistryError::Bus(e.to_string()))?;
        }
        let expires = OffsetDateTime::now_utc() + time::Duration::days(secret_lifetime_days.into());
        for sp in sps {
            let hash = hasher.hash(&sp.client_secret);
            let sector = sp
                .sector_identifier
                .clone()
                .unwrap_or_else(|| sp.client_id.clone());
            let changed = tx
                .run(
                "INSERT INTO service_providers (client_id, name, sector_identifier, secret_hash, \
                 secret_expires_at, redirect_uris, post_logout_redirect_uris, scopes, claims, \
                 acr_values, idp_ids, id_token_signed_response_alg, token_endpoint_auth_method, \
                 status, jwks, userinfo_signed_response_alg, id_token_encrypted_response_alg, \
                 id_token_encrypted_response_enc, userinfo_encrypted_response_alg, \
                 userinfo_encrypted_response_enc, sso, sso_acr_values, min_random_length, \
                 backchannel_logout_uri, pkce_exempt) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                 $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25) \
                 ON CONFLICT (client_id) DO UPDATE SET name = $2, sector_identifier = $3, \
                 secret_expires_at = CASE WHEN service_providers.secret_hash = $4 \
                   THEN service_providers.secret_expires_at ELSE $5 END, \
                 secret_hash = $4, redirect_uris = $6, post_logout_redirect_uris = $7, \
                 scopes = $8, claims = $9, acr_values = $10, idp_ids = $11, \
                 id_token_signed_response_alg = $12, token_endpoint_auth_method = $13, \
                 jwks = $15, userinfo_signed_response_alg = $16, \
                 id_token_encrypted_response_alg = $17, id_token_encrypted_response_enc = $18, \
                 userinfo_encrypted_response_alg = $19, userinfo_encrypted_response_enc = $20, \
                 sso = $21, sso_acr_values = $22, min_random_length = $23, \
                 backchannel_logout_uri = $24, pkce_exempt = $25, updated_at = now() \
                 WHERE (service_providers.name, service_providers.sector_identifier, \
                   service_providers.secret_hash, service_providers.redirect_uris, \
                   service_providers.post_logout_redirect_uris, service_providers.scopes, \
                   service_providers.claims, service_providers.acr_values, \
                   service_providers.idp_ids, service_providers.id_token_signed_response_alg, \
                   service_providers.token_endpoint_auth_method, service_providers.jwks, \
                   service_providers.userinfo_signed_response_alg, \
                   service_providers.id_token_encrypted_response_alg, \
                   service_providers.id_token_encrypted_response_enc, \
                   service_providers.userinfo_encrypted_response_alg, \
                   service_providers.userinfo_encrypted_response_enc, service_providers.sso, \
                   service_providers.sso_acr_values, service_providers.min_random_length, \
                   service_providers.backchannel_logout_uri, service_providers.pkce_exempt) \
                   IS DISTINCT FROM \
                   ($2, $3, $4, $6, $7, $8, $9, $10, $11, $12, $13, $15, $16, $17, $18, $19, $20, \
                   $21, $22, $23, $24, $25)",
                &[
                    &sp.client_id,
                    &sp.name,
                    &sector,
                    &hash,
                    &expires,
                    &sp.redirect_uris,
                    &sp.post_logout_redirect_uris,
                    &sp.scopes,
                    &sp.claims,
                    &sp.acr_values,
                    &sp.idp_ids,
                    &sp.id_token_signed_response_alg.as_str(),
                    &sp.token_endpoint_auth_method,
                    &sp.status.as_str(),
                    &sp.jwks,
                    &sp.userinfo_signed_response_alg.map_or("", Alg::as_str),
                    &sp.id_token_encrypted_response_alg,
                    &enc_or_default(
                        &sp.id_token_encrypted_response_alg,
                        &sp.id_token_encrypted_response_enc,
                    ),
                    &sp.userinfo_encrypted_response_alg,
                    &enc_or_default(
                        &sp.userinfo_encrypted_response_alg,
                        &sp.userinfo_encrypted_response_enc,
                    ),
                    &sp.sso,
                    &sp.sso_acr_values,
                    &i32::try_from(sp.min_random_length).unwrap_or(i32::MAX),
                    &sp.backchannel_logout_uri,
                    &sp.pkce_exempt,
                ],
            )
            .await?;
            if changed == 0 {
                continue;
            }
            relais_bus::enqueue(
                &tx,
                &partner_event(PartnerKind::Sp, &sp.client_id, sp.status)?,
            )
            .await
            .map_err(|e| RegistryError::Bus(e.to_string()))?;
        }
        // The seed lists everyone who may call support: whoever left it loses access.
        let listed: Vec<String> = people.iter().map(|p| p.email.to_lowercase()).collect();
        tx.run("DELETE FROM people WHERE email <> ALL($1)", &[&listed])
            .await?;
        for person in people {
            let (kind, id) = match person
                .partner
                .as_deref()
                .and_then(|p| p.split_once(':'))
                .and_then(|(kind, id)| Some((PartnerKind::parse(kind)?, id)))
            {
                Some((kind, id)) => (Some(kind.as_str()), Some(id)),
                None => (None, None),
            };
            // A subject in the seed wins; a subject bound at first use stays while the
            // person's IdP does.
            tx.run(
                "INSERT INTO people (email, name, role, partner_kind, partner_id, idp_id, \
                 idp_sub, bound_at) VALUES ($1, $2, $3, $4, $5, $6, $7, \
                 CASE WHEN $7::text IS NULL THEN NULL ELSE now() END) \
                 ON CONFLICT (email) DO UPDATE SET name = $2, role = $3, partner_kind = $4, \
                 partner_id = $5, idp_id = $6, \
                 idp_sub = CASE WHEN $7::text IS NOT NULL THEN $7 \
                   WHEN people.idp_id IS DISTINCT FROM $6 THEN NULL ELSE people.idp_sub END, \
                 bound_at = CASE WHEN $7::text IS NOT NULL THEN \
                     CASE WHEN people.idp_sub IS NOT DISTINCT FROM $7 \
                       AND people.idp_id IS NOT DISTINCT FROM $6 THEN people.bound_at \
                     ELSE now() END \
                   WHEN people.idp_id IS DISTINCT FROM $6 THEN NULL ELSE people.bound_at END, \
                 updated_at = now()",
                &[
                    &person.email.to_lowercase(),
                    &person.name,
                    &person.role,
                    &kind,
                    &id,
                    &person.idp,
                    &person.idp_sub,
                ],
            )
            .await?;
        }
        self.outbox.commit(tx).await?;
        Ok(())
    }

    /// A contact or staff member by e-mail address, in any case.
    pub async fn person(&self, email: &str) -> Result<pb::Person, RegistryError> {
        let client = self.pool.get().await?;
        let row = client
            .opt(
                &format!("SELECT {PERSON_COLUMNS} FROM people WHERE email = lower($1)"),
                &[&email],
            )
            .await?
            .ok_or(RegistryError::UnknownPerson)?;
        person_from_row(&row)
    }

    /// Records the subject of a person's first use at their enrolled IdP; the person as
    /// stored afterwards, whoever bound them.
    pub async fn bind_person(
        &self,
        email: &str,
        idp_id: &str,
        idp_sub: &str,
    ) -> Result<pb::Person, RegistryError> {
        if idp_sub.is_empty() || idp_sub.len() > 255 {
            return Err(RegistryError::Invalid(
                "idp_sub must be 1 to 255 characters".into(),
            ));
        }
        let client = self.pool.get().await?;
        client
            .run(
                "UPDATE people SET idp_sub = $3, bound_at = now(), updated_at = now() \
                 WHERE email = lower($1) AND idp_id = $2 AND idp_sub IS NULL",
                &[&email, &idp_id, &idp_sub],
            )
            .await?;
        self.person(email).await
    }

    pub async fn contacts(
        &self,
        partner_kind: &str,
        partner_id: &str,
    ) -> Result<Vec<pb::Person>, RegistryError> {
        let client = self.pool.get().await?;
        client
            .all(
                &format!(
                    "SELECT {PERSON_COLUMNS} FROM people WHERE role = 'contact' \
                     AND partner_kind = $1 AND partner_id = $2 ORDER BY email"
                ),
                &[&partner_kind, &partner_id],
            )
            .await?
            .iter()
            .map(person_from_row)
            .collect()
    }

    /// Makes `new_hash` the client's secret; the current one stays valid until
    /// `previous_until`. Recorded in `status_changes` as an operator action.
    pub async fn rotate_secret(
        &self,
        client_id: &str,
        new_hash: &[u8],
        expires_at: OffsetDateTime,
        previous_until: OffsetDateTime,
    ) -> Result<(), RegistryError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let status = tx
            .opt(
                "UPDATE service_providers SET previous_secret_hash = secret_hash, \
                 previous_secret_expires_at = LEAST($4, secret_expires_at), \
                 secret_hash = $2, secret_expires_at = $3, updated_at = now() \
                 WHERE client_id = $1 RETURNING status",
                &[&client_id, &new_hash, &expires_at, &previous_until],
            )
            .await?
            .ok_or(RegistryError::UnknownClient)?;
        let status = stored_status(status.try_get(0)?)?;
        tx.run(
            "INSERT INTO status_changes (partner_kind, partner_id, status, reason) \
             SELECT 'sp', client_id, status, 'client secret rotated' \
             FROM service_providers WHERE client_id = $1",
            &[&client_id],
        )
        .await?;
        // Announced so that no service keeps accepting a secret from a cache.
        relais_bus::enqueue(&tx, &partner_event(PartnerKind::Sp, client_id, status)?)
            .await
            .map_err(|e| RegistryError::Bus(e.to_string()))?;
        self.outbox.commit(tx).await?;
        Ok(())
    }

    /// Changes a partner's status, records why, and announces it, all in one transaction.
    pub async fn set_status(
        &self,
        kind: PartnerKind,
        id: &str,
        status: PartnerStatus,
        reason: &str,
    ) -> Result<(), RegistryError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        set_status_in(&tx, kind, id, status, reason).await?;
        self.outbox.commit(tx).await?;
        Ok(())
    }
}

/// Changes a partner's status inside the caller's transaction: the change, its reason
/// and its event commit together.
pub async fn set_status_in(
    tx: &deadpool_postgres::Transaction<'_>,
    kind: PartnerKind,
    id: &str,
    status: PartnerStatus,
    reason: &str,
) -> Result<(), RegistryError> {
    let sql = match kind {
        PartnerKind::Sp => {
            "UPDATE service_providers SET status = $2, updated_at = now() WHERE client_id = $1"
        }
        PartnerKind::Idp => {
            "UPDATE identity_providers SET status = $2, updated_at = now() WHERE id = $1"
        }
    };
    let n = tx.execute(sql, &[&id, &status.as_str()]).await?;
    if n == 0 {
        return Err(match kind {
            PartnerKind::Sp => RegistryError::UnknownClient,
            PartnerKind::Idp => RegistryError::UnknownIdp,
        });
    }
    tx.run(
        "INSERT INTO status_changes (partner_kind, partner_id, status, reason) \
         VALUES ($1, $2, $3, $4)",
        &[&kind.as_str(), &id, &status.as_str(), &reason],
    )
    .await?;
    relais_bus::enqueue(tx, &partner_event(kind, id, status)?)
        .await
        .map_err(|e| RegistryError::Bus(e.to_string()))?;
    Ok(())
}

/// The reason recorded when an incident disables an IdP.
const INCIDENT_REASON: &str = "incident";

/// An incident opened on an IdP: it is disabled (if it was active) until every incident
/// on it is resolved. Replays change nothing.
pub async fn incident_opened(
    tx: &deadpool_postgres::Transaction<'_>,
    idp_id: &str,
    ticket_id: uuid::Uuid,
) -> Result<(), RegistryError> {
    tx.run(
        "INSERT INTO idp_incidents (ticket_id, idp_id) VALUES ($1, $2) \
         ON CONFLICT (ticket_id) DO UPDATE SET resolved_at = NULL",
        &[&ticket_id, &idp_id],
    )
    .await?;
    let status: Option<String> = tx
        .opt(
            "SELECT status FROM identity_providers WHERE id = $1 FOR UPDATE",
            &[&idp_id],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let status = status.as_deref().map(stored_status).transpose()?;
    if status == Some(PartnerStatus::Active) {
        set_status_in(
            tx,
            PartnerKind::Idp,
            idp_id,
            PartnerStatus::Suspended,
            &format!("{INCIDENT_REASON} {ticket_id}"),
        )
        .await?;
    }
    Ok(())
}

/// An incident resolved: the IdP comes back only when no incident on it remains open and
/// its last status change was an incident's (an operator's suspension stands).
pub async fn incident_resolved(
    tx: &deadpool_postgres::Transaction<'_>,
    idp_id: &str,
    ticket_id: uuid::Uuid,
) -> Result<(), RegistryError> {
    tx.run(
        "UPDATE idp_incidents SET resolved_at = now() WHERE ticket_id = $1",
        &[&ticket_id],
    )
    .await?;
    let open: i64 = tx
        .one(
            "SELECT count(*) FROM idp_incidents WHERE idp_id = $1 AND resolved_at IS NULL",
            &[&idp_id],
        )
        .await?
        .try_get(0)?;
    if open > 0 {
        return Ok(());
    }
    let last = tx
        .opt(
            "SELECT c.status, c.reason, p.status FROM status_changes c \
             JOIN identity_providers p ON p.id = c.partner_id \
             WHERE c.partner_kind = 'idp' AND c.partner_id = $1 \
             ORDER BY c.id DESC LIMIT 1 FOR UPDATE OF p",
            &[&idp_id],
        )
        .await?;
    if let Some(row) = last {
        let reason: String = row.try_get(1)?;
        let current = stored_status(row.try_get(2)?)?;
        if current == PartnerStatus::Suspended && reason.starts_with(INCIDENT_REASON) {
            set_status_in(
                tx,
                PartnerKind::Idp,
                idp_id,
                PartnerStatus::Active,
                &format!("{INCIDENT_REASON}s resolved ({ticket_id})"),
            )
            .await?;
        }
    }
    Ok(())
}

const PERSON_COLUMNS: &str = "email, name, role, coalesce(partner_kind, ''), \
    coalesce(partner_id, ''), coalesce(idp_id, ''), coalesce(idp_sub, '')";

fn person_from_row(row: &Row) -> Result<pb::Person, RegistryError> {
    Ok(pb::Person {
        email: row.try_get(0)?,
        name: row.try_get(1)?,
        role: row.try_get(2)?,
        partner_kind: row.try_get(3)?,
        partner_id: row.try_get(4)?,
        idp_id: row.try_get(5)?,
        idp_sub: row.try_get(6)?,
    })
}
