//! SQL of account suspensions (identity theft, terms §7): the account marked, and
//! everything live of it ended, in one transaction with its events.
//!
//! The account row is updated first: a sign-in statement holds a share lock on it while
//! it writes (see `write_sign_in`), so a sign-in racing a suspension either commits before
//! (and its session, code and token are then ended here) or sees the account suspended
//! and writes nothing.

use std::future::Future;

use relais_bus::Event;
use relais_runtime::Prepared;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{SESSION_COLUMNS, Session, Store, enqueue_all, session_from_row};
use crate::error::FrontError;

/// How an operator names the account.
pub enum AccountRef<'a> {
    Id(Uuid),
    /// An IdP's id and the SUB FI it gave.
    IdpSubject(&'a str, &'a str),
    /// An SP's client id and the SUB FS it was given.
    SpSubject(&'a str, &'a str),
}

/// What one suspension ended.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ended {
    pub sessions: u32,
    pub tokens: u32,
    pub codes: u32,
}

/// An account's suspension as stored.
#[derive(Clone, Debug)]
pub struct Suspension {
    pub account_id: Uuid,
    pub idp_id: String,
    pub suspended_at: Option<OffsetDateTime>,
}

fn count(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Store {
    /// The account an operator names, if the front knows it. A SUB FS is found through
    /// the codes and tokens given to that SP (kept a day past their expiry); a SUB FI
    /// through the account or, under the pivot identity, any session it opened.
    pub async fn find_account(&self, by: &AccountRef<'_>) -> Result<Option<Uuid>, FrontError> {
        let client = self.pool.get().await?;
        let row = match by {
            AccountRef::Id(id) => {
                client
                    .opt("SELECT id FROM accounts WHERE id = $1", &[id])
                    .await?
            }
            AccountRef::IdpSubject(idp, sub) => {
                client
                    .opt(
                        "SELECT id FROM accounts WHERE idp_id = $1 AND sub_fi = $2 \
                         UNION SELECT account_id FROM sessions WHERE idp_id = $1 AND sub_fi = $2 \
                         LIMIT 1",
                        &[idp, sub],
                    )
                    .await?
            }
            AccountRef::SpSubject(client_id, sub) => {
                client
                    .opt(
                        "SELECT account_id FROM grants WHERE client_id = $1 AND sub_fs = $2 \
                         UNION SELECT account_id FROM access_tokens \
                         WHERE client_id = $1 AND sub_fs = $2 LIMIT 1",
                        &[client_id, sub],
                    )
                    .await?
            }
        };
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Whether the account is suspended now; `None` when unknown.
    pub async fn account_suspended(&self, account_id: Uuid) -> Result<Option<bool>, FrontError> {
        let client = self.pool.get().await?;
        let row = client
            .opt(
                "SELECT suspended_at IS NOT NULL FROM accounts WHERE id = $1",
                &[&account_id],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Suspends the account, in one transaction: marked suspended, its live sessions
    /// ended, its live tokens revoked, its unused codes expired, and the events `events`
    /// makes from the sessions ended and the counts (back-channel notices, the
    /// suspension's record) queued. Nothing changed when the account is unknown or
    /// suspended already.
    pub async fn suspend_account<F, Fut>(
        &self,
        account_id: Uuid,
        case: &str,
        reason: &str,
        events: F,
    ) -> Result<(Suspension, Ended), FrontError>
    where
        F: FnOnce(Vec<Session>, Ended) -> Fut,
        Fut: Future<Output = Result<Vec<Event>, FrontError>>,
    {
        let now = self.clock.now();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // First: from here a sign-in of this account waits for this transaction.
        let Some(row) = tx
            .opt(
                "UPDATE accounts SET suspended_at = $2, suspension_case = $3, \
                 suspension_reason = $4 WHERE id = $1 AND suspended_at IS NULL RETURNING idp_id",
                &[&account_id, &now, &case, &reason],
            )
            .await?
        else {
            return Err(match self.account_suspended(account_id).await? {
                Some(_) => FrontError::AccountAlreadySuspended,
                None => FrontError::AccountUnknown,
            });
        };
        let idp_id: String = row.try_get(0)?;
        let sessions = tx
            .all(
                &format!(
                    "UPDATE sessions SET ended_at = $2 \
                     WHERE account_id = $1 AND ended_at IS NULL AND expires_at > $2 \
                     RETURNING {SESSION_COLUMNS}"
                ),
                &[&account_id, &now],
            )
            .await?
            .iter()
            .map(session_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let tokens = tx
            .run(
                "UPDATE access_tokens SET revoked_at = $2 \
                 WHERE account_id = $1 AND revoked_at IS NULL AND expires_at > $2",
                &[&account_id, &now],
            )
            .await?;
        // An unused code expires now: its redemption then fails as any expired one.
        let codes = tx
            .run(
                "UPDATE grants SET expires_at = $2 \
                 WHERE account_id = $1 AND used_at IS NULL AND expires_at > $2",
                &[&account_id, &now],
            )
            .await?;
        let ended = Ended {
            sessions: count(sessions.len() as u64),
            tokens: count(tokens),
            codes: count(codes),
        };
        let events = events(sessions, ended).await?;
        enqueue_all(&tx, &events).await?;
        self.outbox.commit(tx).await?;
        Ok((
            Suspension {
                account_id,
                idp_id,
                suspended_at: Some(now),
            },
            ended,
        ))
    }

    /// Lifts the suspension, with its record, in one transaction.
    pub async fn lift_suspension(
        &self,
        account_id: Uuid,
        case: &str,
        reason: &str,
        event: &Event,
    ) -> Result<Suspension, FrontError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .opt(
                "UPDATE accounts SET suspended_at = NULL, suspension_case = $2, \
                 suspension_reason = $3 WHERE id = $1 AND suspended_at IS NOT NULL \
                 RETURNING idp_id",
                &[&account_id, &case, &reason],
            )
            .await?
        else {
            return Err(match self.account_suspended(account_id).await? {
                Some(_) => FrontError::AccountNotSuspended,
                None => FrontError::AccountUnknown,
            });
        };
        enqueue_all(&tx, std::slice::from_ref(event)).await?;
        self.outbox.commit(tx).await?;
        Ok(Suspension {
            account_id,
            idp_id: row.try_get(0)?,
            suspended_at: None,
        })
    }
}
