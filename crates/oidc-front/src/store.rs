//! SQL of the front's own schema. Every change that others must hear of is written with
//! its events in one transaction (the outbox).

mod signing_keys;
mod suspensions;

pub use signing_keys::{NewKey, StoredKey};
pub use suspensions::{AccountRef, Ended, Suspension};

use std::sync::Arc;

use deadpool_postgres::{Pool, Transaction};
use relais_bus::Event;
use relais_bus::Outbox;
use relais_runtime::Prepared;
use serde_json::Value;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::throttle::{Counter, Limits};
use crate::error::FrontError;

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    outbox: Outbox,
    /// Every instant the front's SQL compares or records: never the database's `now()`.
    clock: Arc<dyn Clock>,
    blocks: Arc<tokio::sync::Mutex<BlockCache>>,
}

/// How long the live blocks read from the database are trusted: a block another replica
/// records is enforced here within this time; one this replica records or lifts, at once.
/// The failures themselves are counted in the database at every attempt.
const BLOCKS_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// The live blocks as last read: a back-channel request then costs no query for them.
#[derive(Default)]
struct BlockCache {
    read_at: Option<std::time::Instant>,
    until: std::collections::HashMap<String, OffsetDateTime>,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub sid: Uuid,
    pub connection_id: Uuid,
    pub account_id: Uuid,
    pub idp_id: String,
    pub sub_fi: String,
    pub idp_id_token: String,
    pub acr: String,
    pub amr: Vec<String>,
    pub auth_time: OffsetDateTime,
    /// The claims the IdP gave, for single sign-on at other SPs.
    pub idp_claims: Value,
    pub ended: bool,
    pub expires_at: OffsetDateTime,
    pub logout_redirect_uri: Option<String>,
    pub logout_client_state: Option<String>,
    pub logout_client_id: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Grant {
    pub code_hash: Vec<u8>,
    pub connection_id: Uuid,
    pub sid: Uuid,
    pub client_id: String,
    pub redirect_uri: String,
    pub nonce: String,
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    pub acr: String,
    pub amr: Vec<String>,
    pub auth_time: OffsetDateTime,
    pub account_id: Uuid,
    pub idp_id: String,
    pub sub_fi: String,
    pub sub_fs: String,
    pub claims: Value,
    /// Already redeemed once.
    pub used: bool,
    pub expires_at: OffsetDateTime,
}

/// What the one durable write of a sign-in stores, built once the account is known.
pub struct Completion {
    pub session_hash: Vec<u8>,
    pub session: Session,
    pub grant: Grant,
    pub events: Vec<Event>,
}

/// A token as introspection sees it, live or not.
#[derive(Clone, Debug)]
pub struct TokenRecord {
    pub token: AccessToken,
    pub scopes: Vec<String>,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub active: bool,
}

#[derive(Clone, Debug)]
pub struct AccessToken {
    pub connection_id: Uuid,
    pub client_id: String,
    pub sub_fs: String,
    pub account_id: Uuid,
    pub idp_id: String,
    pub acr: String,
    pub claims: Value,
}

async fn enqueue_all(tx: &Transaction<'_>, events: &[Event]) -> Result<(), FrontError> {
    Ok(relais_bus::enqueue_all(tx, events).await?)
}

fn session_from_row(r: &Row) -> Result<Session, FrontError> {
    let ended: Option<OffsetDateTime> = r.try_get("ended_at")?;
    Ok(Session {
        sid: r.try_get("sid")?,
        connection_id: r.try_get("connection_id")?,
        account_id: r.try_get("account_id")?,
        idp_id: r.try_get("idp_id")?,
        sub_fi: r.try_get("sub_fi")?,
        idp_id_token: r.try_get("idp_id_token")?,
        acr: r.try_get("acr")?,
        amr: r.try_get("amr")?,
        auth_time: r.try_get("auth_time")?,
        idp_claims: r.try_get("idp_claims")?,
        ended: ended.is_some(),
        expires_at: r.try_get("expires_at")?,
        logout_redirect_uri: r.try_get("logout_redirect_uri")?,
        logout_client_state: r.try_get("logout_client_state")?,
        logout_client_id: r.try_get("logout_client_id")?,
    })
}

fn grant_from_row(r: &Row) -> Result<Grant, FrontError> {
    Ok(Grant {
        code_hash: r.try_get("code_hash")?,
        connection_id: r.try_get("connection_id")?,
        sid: r.try_get("sid")?,
        client_id: r.try_get("client_id")?,
        redirect_uri: r.try_get("redirect_uri")?,
        nonce: r.try_get("nonce")?,
        scopes: r.try_get("scopes")?,
        code_challenge: r.try_get("code_challenge")?,
        acr: r.try_get("acr")?,
        amr: r.try_get("amr")?,
        auth_time: r.try_get("auth_time")?,
        account_id: r.try_get("account_id")?,
        idp_id: r.try_get("idp_id")?,
        sub_fi: r.try_get("sub_fi")?,
        sub_fs: r.try_get("sub_fs")?,
        claims: r.try_get("claims")?,
        used: r.try_get::<_, Option<OffsetDateTime>>("used_at")?.is_some(),
        expires_at: r.try_get("expires_at")?,
    })
}

const SESSION_COLUMNS: &str = "sid, connection_id, account_id, idp_id, sub_fi, idp_id_token, \
    acr, amr, auth_time, idp_claims, ended_at, expires_at, logout_redirect_uri, \
    logout_client_state, logout_client_id";

impl Store {
    pub fn new(pool: Pool, outbox: Outbox, clock: Arc<dyn Clock>) -> Self {
        Store {
            pool,
            outbox,
            clock,
            blocks: Arc::default(),
        }
    }

    pub async fn record_events(&self, events: &[Event]) -> Result<(), FrontError> {
        let client = self.pool.get().await?;
        relais_bus::enqueue_all(&client, events).await?;
        self.outbox.wake();
        Ok(())
    }

    /// The one durable write of a sign-in, one statement: the account of the IdP subject
    /// (created on a first sign-in with `account_id`, its id derived from what finds it),
    /// and what `build` makes for it (the session, the code's grant and every step of the
    /// connection). An account created before ids were derived has another id: the
    /// statement then writes nothing, and is run again, built for that account. False,
    /// and nothing written, when the connection was already completed (a replayed
    /// callback).
    pub async fn complete_sign_in<F>(
        &self,
        account_id: Uuid,
        idp_id: &str,
        sub_fi: &str,
        pivot: Option<&[u8]>,
        build: F,
    ) -> Result<bool, FrontError>
    where
        F: Fn(Uuid) -> Result<Completion, FrontError>,
    {
        let client = self.pool.get().await?;
        let mut account = account_id;
        // Another sign-in of the same new person may be creating the account at this
        // moment: the statement then sees neither row; once it has committed, the next
        // run finds it.
        let mut concurrent_retry = true;
        loop {
            if self.write_sign_in(&client, pivot, &build(account)?).await? {
                self.outbox.wake();
                return Ok(true);
            }
            let found = self.account_of(&client, idp_id, sub_fi, pivot).await?;
            match found {
                // Read after the statement: a suspension it waited for is seen here.
                Some((_, true)) => return Err(FrontError::AccountSuspended),
                Some((id, false)) if id != account => account = id,
                _ if concurrent_retry => concurrent_retry = false,
                _ => return Ok(false),
            }
        }
    }

    /// The account a person's IdP identity already has, if any, and whether it is
    /// suspended.
    async fn account_of(
        &self,
        client: &deadpool_postgres::Object,
        idp_id: &str,
        sub_fi: &str,
        pivot: Option<&[u8]>,
    ) -> Result<Option<(Uuid, bool)>, FrontError> {
        let row =
            match pivot {
                Some(hash) => client
                    .opt(
                        "SELECT id, suspended_at IS NOT NULL FROM accounts WHERE pivot_hash = $1",
                        &[&hash],
                    )
                    .await?,
                None => {
                    client
                        .opt(
                            "SELECT id, suspended_at IS NOT NULL FROM accounts \
                         WHERE idp_id = $1 AND sub_fi = $2 AND pivot_hash IS NULL",
                            &[&idp_id, &sub_fi],
                        )
                        .await?
                }
            };
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// The account (created if new), session, grant and record of a sign-in, written only
    /// if the account is the session's (`$4`) and the connection is not completed yet.
    async fn write_sign_in(
        &self,
        client: &deadpool_postgres::Object,
        pivot: Option<&[u8]>,
        c: &Completion,
    ) -> Result<bool, FrontError> {
        // By the pivot identity's hash when the deployment maps accounts so (the IdP and
        // subject that first brought the person are kept), else by the IdP's subject.
        // An existing account is taken only unsuspended, under a share lock: a suspension
        // in progress (it updates the row first) is waited for and its outcome re-read,
        // and one that starts later waits for this statement and then ends what it wrote.
        let account = match pivot {
            Some(_) => {
                "acc AS (INSERT INTO accounts (id, idp_id, sub_fi, pivot_hash) \
                 VALUES ($4, $5, $6, $22) \
                 ON CONFLICT (pivot_hash) WHERE pivot_hash IS NOT NULL DO NOTHING RETURNING id), \
                 held AS (SELECT id FROM accounts WHERE pivot_hash = $22::bytea \
                 AND suspended_at IS NULL FOR SHARE), \
                 found AS (SELECT id FROM acc UNION ALL SELECT id FROM held)"
            }
            None => {
                "acc AS (INSERT INTO accounts (id, idp_id, sub_fi) VALUES ($4, $5, $6) \
                 ON CONFLICT (idp_id, sub_fi) WHERE pivot_hash IS NULL DO NOTHING RETURNING id), \
                 held AS (SELECT id FROM accounts WHERE idp_id = $5::text AND sub_fi = $6::text \
                 AND pivot_hash IS NULL AND suspended_at IS NULL FOR SHARE), \
                 found AS (SELECT id FROM acc UNION ALL SELECT id FROM held)"
            }
        };
        let ctes = format!(
            "{account}, \
             s AS (INSERT INTO sessions (id_hash, sid, connection_id, account_id, idp_id, \
             sub_fi, idp_id_token, acr, auth_time, expires_at, amr, idp_claims) \
             SELECT $1::bytea, $2::uuid, $3::uuid, $4::uuid, $5::text, $6::text, $7::text, \
             $8::text, $9::timestamptz, $10::timestamptz, $17::text[], $21::jsonb \
             WHERE $4::uuid IN (SELECT id FROM found) \
             ON CONFLICT (connection_id) DO NOTHING RETURNING sid), \
             change AS (INSERT INTO grants (code_hash, connection_id, sid, client_id, \
             redirect_uri, nonce, scopes, code_challenge, acr, amr, auth_time, account_id, \
             idp_id, sub_fi, sub_fs, claims, expires_at) \
             SELECT $11::bytea, $3::uuid, sid, $12::text, $13::text, $14::text, $15::text[], \
             $16::text, $8::text, $17::text[], $9::timestamptz, $4::uuid, $5::text, $6::text, \
             $18::text, $19::jsonb, $20::timestamptz FROM s RETURNING code_hash)"
        );
        let (s, g) = (&c.session, &c.grant);
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
            &c.session_hash,
            &s.sid,
            &s.connection_id,
            &s.account_id,
            &s.idp_id,
            &s.sub_fi,
            &s.idp_id_token,
            &s.acr,
            &s.auth_time,
            &s.expires_at,
            &g.code_hash,
            &g.client_id,
            &g.redirect_uri,
            &g.nonce,
            &g.scopes,
            &g.code_challenge,
            &g.amr,
            &g.sub_fs,
            &g.claims,
            &g.expires_at,
            &s.idp_claims,
        ];
        if let Some(hash) = &pivot {
            params.push(hash);
        }
        let written = relais_bus::change_if_with_events(client, &ctes, &params, &c.events).await?;
        Ok(written > 0)
    }

    /// A single sign-on: a code's grant under an existing session, with its record, in
    /// one statement; false, and nothing written, when the session has ended or its
    /// account is suspended (read under the account's share lock, as a sign-in's).
    pub async fn insert_grant(&self, g: &Grant, events: &[Event]) -> Result<bool, FrontError> {
        let client = self.pool.get().await?;
        let written = relais_bus::change_if_with_events(
            &client,
            "live AS (SELECT a.id FROM accounts a WHERE a.id = $12::uuid \
             AND a.suspended_at IS NULL FOR SHARE), \
             change AS (INSERT INTO grants (code_hash, connection_id, sid, client_id, \
             redirect_uri, nonce, scopes, code_challenge, acr, amr, auth_time, account_id, \
             idp_id, sub_fi, sub_fs, claims, expires_at) \
             SELECT $1::bytea, $2::uuid, $3::uuid, $4::text, $5::text, $6::text, $7::text[], \
             $8::text, $9::text, $10::text[], $11::timestamptz, $12::uuid, $13::text, \
             $14::text, $15::text, $16::jsonb, $17::timestamptz FROM live \
             WHERE EXISTS (SELECT 1 FROM sessions s WHERE s.sid = $3::uuid \
             AND s.ended_at IS NULL) RETURNING code_hash)",
            &[
                &g.code_hash,
                &g.connection_id,
                &g.sid,
                &g.client_id,
                &g.redirect_uri,
                &g.nonce,
                &g.scopes,
                &g.code_challenge,
                &g.acr,
                &g.amr,
                &g.auth_time,
                &g.account_id,
                &g.idp_id,
                &g.sub_fi,
                &g.sub_fs,
                &g.claims,
                &g.expires_at,
            ],
            events,
        )
        .await?;
        if written == 0 {
            return Ok(false);
        }
        self.outbox.wake();
        Ok(true)
    }

    /// The grant of a code, used or not.
    pub async fn grant(&self, code_hash: &[u8]) -> Result<Option<Grant>, FrontError> {
        let client = self.pool.get().await?;
        client
            .opt("SELECT * FROM grants WHERE code_hash = $1", &[&code_hash])
            .await?
            .map(|r| grant_from_row(&r))
            .transpose()
    }

    /// Marks a code of `client_id` used without issuing anything.
    pub async fn burn_code(&self, code_hash: &[u8], client_id: &str) -> Result<(), FrontError> {
        let client = self.pool.get().await?;
        client
            .run(
                "UPDATE grants SET used_at = COALESCE(used_at, $3) \
                 WHERE code_hash = $1 AND client_id = $2",
                &[&code_hash, &client_id, &self.clock.now()],
            )
            .await?;
        Ok(())
    }

    /// Redeems a code of `client_id` presented with `redirect_uri` and the PKCE
    /// challenge of its verifier (`None` without one): if every check holds, marks it
    /// used and stores its access token with `events`, completed by the grant's
    /// connection, subjects and acr, in one statement, and returns the grant. None, and
    /// nothing written, when any check fails (unknown, another client's, used, expired,
    /// wrong redirect URI or verifier, or another redemption got there first): the caller
    /// then reads the grant to tell which.
    #[allow(clippy::too_many_arguments)]
    pub async fn redeem_code(
        &self,
        code_hash: &[u8],
        client_id: &str,
        redirect_uri: Option<&str>,
        challenge: Option<&str>,
        token_hash: &[u8],
        expires_at: OffsetDateTime,
        events: &[Event],
    ) -> Result<Option<Grant>, FrontError> {
        let client = self.pool.get().await?;
        let row = relais_bus::change_with_filled_events(
            &client,
            "used AS (UPDATE grants SET used_at = $5 \
             WHERE code_hash = $1 AND client_id = $2 AND used_at IS NULL AND expires_at > $5 \
             AND redirect_uri = $6 AND code_challenge IS NOT DISTINCT FROM $7 RETURNING *), \
             token AS (INSERT INTO access_tokens (token_hash, code_hash, connection_id, \
             client_id, sub_fs, account_id, idp_id, acr, claims, expires_at, scopes, issued_at) \
             SELECT $3::bytea, code_hash, connection_id, client_id, sub_fs, account_id, idp_id, \
             acr, claims, $4::timestamptz, scopes, $5::timestamptz FROM used RETURNING 1), \
             change AS (SELECT used.*, jsonb_build_object('connection_id', connection_id::text, \
             'idp_id', idp_id, 'acr', acr, 'sub_fs', sub_fs, 'account_id', account_id::text, \
             'session_id', sid::text) AS fill FROM used CROSS JOIN token)",
            &[
                &code_hash,
                &client_id,
                &token_hash,
                &expires_at,
                &self.clock.now(),
                &redirect_uri,
                &challenge,
            ],
            events,
        )
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        self.outbox.wake();
        grant_from_row(&row).map(Some)
    }

    /// A code of `client_id` presented again: it stays used and every token issued from
    /// it is revoked. Run after the first redemption's statement (which stored its token
    /// with the code's use), so that token is found.
    pub async fn revoke_code_tokens(
        &self,
        code_hash: &[u8],
        client_id: &str,
    ) -> Result<(), FrontError> {
        let client = self.pool.get().await?;
        client
            .run(
                "WITH g AS (UPDATE grants SET used_at = COALESCE(used_at, $3) \
                 WHERE code_hash = $1 AND client_id = $2 RETURNING code_hash) \
                 UPDATE access_tokens SET revoked_at = $3 \
                 WHERE code_hash IN (SELECT code_hash FROM g) AND revoked_at IS NULL",
                &[&code_hash, &client_id, &self.clock.now()],
            )
            .await?;
        Ok(())
    }

    /// Any token of `client_id` with this hash, for introspection.
    pub async fn token_record(
        &self,
        token_hash: &[u8],
        client_id: &str,
    ) -> Result<Option<TokenRecord>, FrontError> {
        let client = self.pool.get().await?;
        let Some(r) = client
            .opt(
                "SELECT connection_id, client_id, sub_fs, account_id, idp_id, acr, claims, \
                 scopes, issued_at, expires_at, \
                 (revoked_at IS NULL AND expires_at > $3) AS active \
                 FROM access_tokens WHERE token_hash = $1 AND client_id = $2",
                &[&token_hash, &client_id, &self.clock.now()],
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(TokenRecord {
            token: AccessToken {
                connection_id: r.try_get("connection_id")?,
                client_id: r.try_get("client_id")?,
                sub_fs: r.try_get("sub_fs")?,
                account_id: r.try_get("account_id")?,
                idp_id: r.try_get("idp_id")?,
                acr: r.try_get("acr")?,
                claims: r.try_get("claims")?,
            },
            scopes: r.try_get("scopes")?,
            issued_at: r.try_get("issued_at")?,
            expires_at: r.try_get("expires_at")?,
            active: r.try_get("active")?,
        }))
    }

    /// Revokes a token of `client_id`; returns its connection when it was live.
    pub async fn revoke_token(
        &self,
        token_hash: &[u8],
        client_id: &str,
    ) -> Result<Option<Uuid>, FrontError> {
        let client = self.pool.get().await?;
        let row = client
            .opt(
                "UPDATE access_tokens SET revoked_at = $3 \
                 WHERE token_hash = $1 AND client_id = $2 AND revoked_at IS NULL \
                 RETURNING connection_id",
                &[&token_hash, &client_id, &self.clock.now()],
            )
            .await?;
        row.map(|r| r.try_get(0))
            .transpose()
            .map_err(FrontError::from)
    }

    /// Userinfo's read and its record in one statement: the live access token of
    /// `client_id` under `token_hash`, and `events` completed from it (connection,
    /// subjects, acr) queued only if it is live. None, and nothing queued, otherwise.
    pub async fn serve_userinfo(
        &self,
        token_hash: &[u8],
        client_id: &str,
        events: &[Event],
    ) -> Result<Option<AccessToken>, FrontError> {
        let client = self.pool.get().await?;
        let row = relais_bus::change_with_filled_events(
            &client,
            "change AS (SELECT connection_id, client_id, sub_fs, account_id, idp_id, acr, \
             claims, jsonb_build_object('connection_id', connection_id::text, \
             'idp_id', idp_id, 'acr', acr, 'sub_fs', sub_fs, \
             'account_id', account_id::text) AS fill \
             FROM access_tokens WHERE token_hash = $1 AND client_id = $2 \
             AND expires_at > $3 AND revoked_at IS NULL)",
            &[&token_hash, &client_id, &self.clock.now()],
            events,
        )
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        self.outbox.wake();
        access_token_from_row(&r).map(Some)
    }

    /// A live access token: known, unexpired, unrevoked.
    pub async fn access_token(&self, token_hash: &[u8]) -> Result<Option<AccessToken>, FrontError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT connection_id, client_id, sub_fs, account_id, idp_id, acr, claims \
                 FROM access_tokens WHERE token_hash = $1 AND expires_at > $2 \
                 AND revoked_at IS NULL",
            )
            .await?;
        let now = self.clock.now();
        let Some(r) = client.query_opt(&stmt, &[&token_hash, &now]).await? else {
            return Ok(None);
        };
        access_token_from_row(&r).map(Some)
    }

    /// The IdP subject of the sign-in an access token came from, through its grant's
    /// session; `None` once that session is gone.
    pub async fn token_sub_fi(&self, token_hash: &[u8]) -> Result<Option<String>, FrontError> {
        let client = self.pool.get().await?;
        client
            .opt(
                "SELECT s.sub_fi FROM access_tokens t JOIN grants g ON g.code_hash = t.code_hash \
                 JOIN sessions s ON s.sid = g.sid WHERE t.token_hash = $1",
                &[&token_hash],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(FrontError::from)
    }

    pub async fn session_by_cookie(&self, id_hash: &[u8]) -> Result<Option<Session>, FrontError> {
        let client = self.pool.get().await?;
        client
            .opt(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1"),
                &[&id_hash],
            )
            .await?
            .map(|r| session_from_row(&r))
            .transpose()
    }

    /// Each SP the session signed the user in at, with the subject it was given and the
    /// connection that did it (the latest, for an SP signed in at twice).
    pub async fn session_clients(
        &self,
        sid: Uuid,
    ) -> Result<Vec<(String, String, Uuid)>, FrontError> {
        let client = self.pool.get().await?;
        client
            .all(
                "SELECT DISTINCT ON (client_id) client_id, sub_fs, connection_id FROM grants \
                 WHERE sid = $1 ORDER BY client_id, expires_at DESC",
                &[&sid],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Ends a session; with a logout state, remembers where to send the browser back
    /// once the IdP has signed the user out.
    #[allow(clippy::too_many_arguments)]
    pub async fn end_session(
        &self,
        sid: Uuid,
        logout_state_hash: Option<&[u8]>,
        redirect_uri: Option<&str>,
        client_state: Option<&str>,
        client_id: Option<&str>,
        events: &[Event],
    ) -> Result<(), FrontError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.run(
            "UPDATE sessions SET ended_at = COALESCE(ended_at, $6), logout_state_hash = $2, \
             logout_redirect_uri = $3, logout_client_state = $4, logout_client_id = $5 \
             WHERE sid = $1",
            &[
                &sid,
                &logout_state_hash,
                &redirect_uri,
                &client_state,
                &client_id,
                &self.clock.now(),
            ],
        )
        .await?;
        enqueue_all(&tx, events).await?;
        self.outbox.commit(tx).await?;
        Ok(())
    }

    /// The session waiting for the IdP's logout callback with this state; single use.
    pub async fn take_logout(&self, state_hash: &[u8]) -> Result<Option<Session>, FrontError> {
        let client = self.pool.get().await?;
        client
            .opt(
                &format!(
                    "UPDATE sessions SET logout_state_hash = NULL WHERE logout_state_hash = $1 \
                     RETURNING {SESSION_COLUMNS}"
                ),
                &[&state_hash],
            )
            .await?
            .map(|r| session_from_row(&r))
            .transpose()
    }

    /// Records a client assertion's jti; false when it was already used.
    pub async fn use_assertion(
        &self,
        jti_hash: &[u8],
        client_id: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, FrontError> {
        let client = self.pool.get().await?;
        let n = client
            .run(
                "INSERT INTO client_assertions (jti_hash, client_id, expires_at) \
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&jti_hash, &client_id, &expires_at],
            )
            .await?;
        Ok(n == 1)
    }

    /// The latest end of a live block among `subjects`.
    pub async fn blocked_until(
        &self,
        subjects: &[String],
    ) -> Result<Option<OffsetDateTime>, FrontError> {
        let now = self.clock.now();
        let mut cache = self.blocks.lock().await;
        if cache.read_at.is_none_or(|at| at.elapsed() >= BLOCKS_FRESH) {
            let client = self.pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT subject, blocked_until FROM auth_failures WHERE blocked_until > $1",
                )
                .await?;
            cache.until = client
                .query(&stmt, &[&now])
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, FrontError>>()?;
            cache.read_at = Some(std::time::Instant::now());
        }
        Ok(subjects
            .iter()
            .filter_map(|s| cache.until.get(s).copied())
            .filter(|until| *until > now)
            .max())
    }

    /// The next check reads the blocks again.
    async fn forget_blocks(&self) {
        self.blocks.lock().await.read_at = None;
    }

    /// Counts one more failure for each subject; returns the blocks it caused.
    pub async fn record_auth_failure(
        &self,
        subjects: &[String],
        limits: &Limits,
    ) -> Result<Vec<(String, OffsetDateTime)>, FrontError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut blocked = Vec::new();
        for subject in subjects {
            let now = self.clock.now();
            let previous = tx
                .opt(
                    "SELECT failures, window_started_at, blocks, blocked_until \
                     FROM auth_failures WHERE subject = $1 FOR UPDATE",
                    &[subject],
                )
                .await?
                .map(|r| -> Result<Counter, FrontError> {
                    Ok(Counter {
                        failures: u32::try_from(r.try_get::<_, i32>(0)?).unwrap_or(0),
                        window_started_at: r.try_get(1)?,
                        blocks: u32::try_from(r.try_get::<_, i32>(2)?).unwrap_or(0),
                        blocked_until: r.try_get(3)?,
                    })
                })
                .transpose()?;
            let next = limits.after_failure(previous, now);
            let failures = i32::try_from(next.failures).unwrap_or(i32::MAX);
            let blocks = i32::try_from(next.blocks).unwrap_or(i32::MAX);
            tx.run(
                "INSERT INTO auth_failures (subject, failures, window_started_at, blocks, \
                 blocked_until, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (subject) DO UPDATE SET failures = $2, window_started_at = $3, \
                 blocks = $4, blocked_until = $5, updated_at = $6",
                &[
                    subject,
                    &failures,
                    &next.window_started_at,
                    &blocks,
                    &next.blocked_until,
                    &now,
                ],
            )
            .await?;
            if next.blocked_until != previous.and_then(|p| p.blocked_until)
                && let Some(until) = next.blocked_until
            {
                blocked.push((subject.clone(), until));
            }
        }
        tx.commit().await?;
        if !blocked.is_empty() {
            self.forget_blocks().await;
        }
        Ok(blocked)
    }

    /// Live blocks, for operators.
    pub async fn blocks(&self) -> Result<Vec<(String, OffsetDateTime, u32, u32)>, FrontError> {
        let client = self.pool.get().await?;
        let rows = client
            .all(
                "SELECT subject, blocked_until, blocks, failures FROM auth_failures \
                 WHERE blocked_until > $1 ORDER BY blocked_until DESC",
                &[&self.clock.now()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    u32::try_from(r.try_get::<_, i32>(2)?).unwrap_or(0),
                    u32::try_from(r.try_get::<_, i32>(3)?).unwrap_or(0),
                ))
            })
            .collect()
    }

    /// Lifts a block and forgets the subject's failures; false if there was none.
    pub async fn clear_block(&self, subject: &str) -> Result<bool, FrontError> {
        let client = self.pool.get().await?;
        let cleared = client
            .run("DELETE FROM auth_failures WHERE subject = $1", &[&subject])
            .await?
            == 1;
        self.forget_blocks().await;
        Ok(cleared)
    }

    /// Deletes what has expired: ended or expired sessions, grants (their tokens
    /// go with them). Returns the number of rows deleted.
    pub async fn purge_expired(&self) -> Result<u64, FrontError> {
        let client = self.pool.get().await?;
        let now = self.clock.now();
        let mut n = client
            .run(
                "DELETE FROM access_tokens WHERE expires_at < $1::timestamptz - interval '1 day'",
                &[&now],
            )
            .await?;
        n += client
            .run(
                "DELETE FROM grants g WHERE g.expires_at < $1::timestamptz - interval '1 day' \
                 AND NOT EXISTS (SELECT 1 FROM access_tokens t WHERE t.code_hash = g.code_hash) \
                 AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.sid = g.sid \
                   AND s.ended_at IS NULL AND s.expires_at > $1)",
                &[&now],
            )
            .await?;
        n += client
            .run(
                "DELETE FROM sessions s WHERE s.expires_at < $1::timestamptz - interval '1 day' \
                 AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.sid = s.sid)",
                &[&now],
            )
            .await?;
        n += client
            .run(
                "DELETE FROM client_assertions WHERE expires_at < $1",
                &[&now],
            )
            .await?;
        n += client
            .run(
                "DELETE FROM auth_failures WHERE (blocked_until IS NULL OR blocked_until < $1) \
                 AND updated_at < $1::timestamptz - interval '1 day'",
                &[&now],
            )
            .await?;
        n += self.delete_retired_signing_keys().await?;
        Ok(n)
    }
}

fn access_token_from_row(r: &Row) -> Result<AccessToken, FrontError> {
    Ok(AccessToken {
        connection_id: r.try_get("connection_id")?,
        client_id: r.try_get("client_id")?,
        sub_fs: r.try_get("sub_fs")?,
        account_id: r.try_get("account_id")?,
        idp_id: r.try_get("idp_id")?,
        acr: r.try_get("acr")?,
        claims: r.try_get("claims")?,
    })
}
