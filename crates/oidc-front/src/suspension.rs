//! Identity theft (terms §7; REQUIREMENTS "Identity theft"): an operator suspends an
//! account at every SP at once and lifts the suspension later. Both are one transaction
//! with their record (`account.suspended`, `account.suspension_lifted`) for the proof
//! store; the back-channel notices are those `/end_session` queues.

use relais_bus::Event;
use relais_bus::events::{ConnectionStep, Outcome};
use relais_proto::oidc_front::v1 as pb;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::error::FrontError;
use crate::events;
use crate::front::Front;
use crate::store::{AccountRef, Ended, Suspension};

pub const SUSPENDED: &str = "account.suspended";
pub const LIFTED: &str = "account.suspension_lifted";

/// The most a case reference and a reason may weigh (they are recorded as sent).
const MAX_CASE: usize = 200;
const MAX_REASON: usize = 1000;

/// The record of a suspension or of its lifting.
#[derive(Debug, Serialize)]
struct AccountRecord<'a> {
    account_id: String,
    case: &'a str,
    reason: &'a str,
    /// The operator's certificate name.
    operator: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sessions_ended: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens_revoked: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    codes_revoked: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logout_notices: Option<u32>,
}

fn checked<'a>(case: &'a str, reason: &'a str) -> Result<(&'a str, &'a str), FrontError> {
    let (case, reason) = (case.trim(), reason.trim());
    if case.is_empty() || case.len() > MAX_CASE {
        return Err(FrontError::SuspensionInvalid(format!(
            "case is required, at most {MAX_CASE} bytes"
        )));
    }
    if reason.is_empty() || reason.len() > MAX_REASON {
        return Err(FrontError::SuspensionInvalid(format!(
            "reason is required, at most {MAX_REASON} bytes"
        )));
    }
    Ok((case, reason))
}

fn account_id(id: &str) -> Result<Uuid, FrontError> {
    Uuid::parse_str(id.trim())
        .map_err(|_| FrontError::SuspensionInvalid("account_id is not a UUID".into()))
}

fn subject(s: &pb::SubjectOf) -> Result<(&str, &str), FrontError> {
    if s.partner_id.is_empty() || s.sub.is_empty() {
        return Err(FrontError::SuspensionInvalid(
            "a subject needs its partner id and its sub".into(),
        ));
    }
    Ok((&s.partner_id, &s.sub))
}

fn answer(s: &Suspension, ended: Ended, notices: u32) -> pb::AccountSuspension {
    pb::AccountSuspension {
        account_id: s.account_id.to_string(),
        idp_id: s.idp_id.clone(),
        suspended_at: s
            .suspended_at
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default(),
        sessions_ended: ended.sessions,
        tokens_revoked: ended.tokens,
        codes_revoked: ended.codes,
        logout_notices: notices,
    }
}

impl Front {
    fn record(
        &self,
        kind: &str,
        now: OffsetDateTime,
        r: &AccountRecord<'_>,
    ) -> Result<Event, FrontError> {
        let payload = serde_json::to_value(r)
            .map_err(|e| FrontError::Internal(format!("account record: {e}")))?;
        Ok(Event::new_at(
            Uuid::new_v4(),
            now,
            kind,
            events::SOURCE,
            payload,
        ))
    }

    pub async fn suspend_account(
        &self,
        req: pb::SuspendAccountRequest,
        operator: &str,
    ) -> Result<pb::AccountSuspension, FrontError> {
        use pb::suspend_account_request::Account;
        let (case, reason) = checked(&req.case, &req.reason)?;
        let by = match &req.account {
            Some(Account::AccountId(id)) => AccountRef::Id(account_id(id)?),
            Some(Account::SubFi(s)) => {
                let (idp, sub) = subject(s)?;
                AccountRef::IdpSubject(idp, sub)
            }
            Some(Account::SubFs(s)) => {
                let (sp, sub) = subject(s)?;
                AccountRef::SpSubject(sp, sub)
            }
            None => {
                return Err(FrontError::SuspensionInvalid(
                    "name the account: account_id, sub_fi or sub_fs".into(),
                ));
            }
        };
        let account = self
            .store
            .find_account(&by)
            .await?
            .ok_or(FrontError::AccountUnknown)?;
        let now = self.clock.now();
        let mut notices = 0;
        let notices_ref = &mut notices;
        let (suspension, ended) = self
            .store
            .suspend_account(account, case, reason, |sessions, ended| async move {
                let mut out = Vec::new();
                for session in &sessions {
                    // The notices `/end_session` queues, with the session's end.
                    let owed = self.backchannel_notices(session).await?;
                    *notices_ref += u32::try_from(owed.len()).unwrap_or(u32::MAX);
                    out.extend(owed);
                    out.push(events::at(
                        now,
                        &session.connection_id.to_string(),
                        ConnectionStep::SessionEnded,
                        Outcome::Success,
                        &pb::Source::default(),
                        |e| {
                            e.idp_id = Some(session.idp_id.clone());
                            e.session_id = Some(session.sid.to_string());
                            e.account_id = Some(session.account_id.to_string());
                            e.error_code = Some(FrontError::AccountSuspended.code());
                        },
                    )?);
                }
                let record = AccountRecord {
                    account_id: account.to_string(),
                    case,
                    reason,
                    operator,
                    sessions_ended: Some(ended.sessions),
                    tokens_revoked: Some(ended.tokens),
                    codes_revoked: Some(ended.codes),
                    logout_notices: Some(*notices_ref),
                };
                out.push(self.record(SUSPENDED, now, &record)?);
                Ok(out)
            })
            .await?;
        // The account itself is in the proof store, not in logs.
        tracing::warn!(case, operator, "account suspended by an operator");
        Ok(answer(&suspension, ended, notices))
    }

    pub async fn lift_account_suspension(
        &self,
        req: pb::LiftAccountSuspensionRequest,
        operator: &str,
    ) -> Result<pb::AccountSuspension, FrontError> {
        let (case, reason) = checked(&req.case, &req.reason)?;
        let account = account_id(&req.account_id)?;
        let record = AccountRecord {
            account_id: account.to_string(),
            case,
            reason,
            operator,
            sessions_ended: None,
            tokens_revoked: None,
            codes_revoked: None,
            logout_notices: None,
        };
        let event = self.record(LIFTED, self.clock.now(), &record)?;
        let lifted = self
            .store
            .lift_suspension(account, case, reason, &event)
            .await?;
        tracing::warn!(case, operator, "account suspension lifted by an operator");
        Ok(answer(&lifted, Ended::default(), 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_and_a_reason_are_required_and_bounded() {
        assert!(checked("", "why").is_err());
        assert!(checked("CASE-1", " ").is_err());
        assert!(checked(&"c".repeat(MAX_CASE + 1), "why").is_err());
        assert!(checked("CASE-1", &"r".repeat(MAX_REASON + 1)).is_err());
        assert_eq!(checked(" CASE-1 ", "why").ok(), Some(("CASE-1", "why")));
    }

    #[test]
    fn an_account_id_must_be_a_uuid() {
        assert!(matches!(
            account_id("not-a-uuid"),
            Err(FrontError::SuspensionInvalid(_))
        ));
    }
}
