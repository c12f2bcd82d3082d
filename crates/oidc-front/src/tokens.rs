//! The SP's back channel: token, userinfo, revocation, introspection, client
//! authentication and the brute-force guard in front of them.

use std::sync::Arc;

use relais_bus::events::{ConnectionStep, Outcome, PartnerStatus};
use relais_jose::KeySet;
use relais_proto::oidc_front::v1 as pb;
use relais_proto::registry::v1 as reg;
use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime};

use crate::domain::authorize::Params;
use crate::domain::client_auth::{PRIVATE_KEY_JWT, client_credentials};
use crate::domain::id_token;
use crate::domain::secrets::{self, at_hash, constant_time_eq, pkce_s256, sha256};
use crate::domain::{throttle, types};
use crate::error::FrontError;
use crate::events;
use crate::front::{Front, params_of, ts};
use crate::responses::{json_error, json_ok};
use crate::store::{AccessToken, Grant};

impl Front {
    /// A back-channel call (token, revocation, introspection) behind the brute-force
    /// guard, given the authenticated client. Failures to authenticate count against the
    /// client id named from that address and against the address; once the pair is
    /// blocked it is refused before its credentials are checked. A blocked address
    /// still has credentials checked: verified ones are served (the SPs behind one NAT
    /// or proxy are not refused for another's failures), others refused. Failures after
    /// authentication (codes, PKCE, redirect URIs) count against the client itself,
    /// which a block then refuses from everywhere: it earned it with its own credentials.
    async fn guarded<F, Fut>(&self, req: pb::TokenRequest, call: F) -> pb::ApiResponse
    where
        F: FnOnce(pb::TokenRequest, pb::Source, Arc<reg::ServiceProvider>) -> Fut,
        Fut: std::future::Future<Output = Result<Value, FrontError>>,
    {
        let source = req.source.clone().unwrap_or_default();
        let basic = req.authorization.trim_start().starts_with("Basic ");
        let result = self.guarded_inner(req, &source, call).await;
        match result {
            Ok(v) => json_ok(&v),
            Err(e) => json_error(&e, basic.then_some("Basic"), &source.request_id),
        }
    }

    async fn guarded_inner<F, Fut>(
        &self,
        req: pb::TokenRequest,
        source: &pb::Source,
        call: F,
    ) -> Result<Value, FrontError>
    where
        F: FnOnce(pb::TokenRequest, pb::Source, Arc<reg::ServiceProvider>) -> Fut,
        Fut: std::future::Future<Output = Result<Value, FrontError>>,
    {
        let params = params_of(req.params.clone());
        let address = (!source.ip.is_empty()).then(|| throttle::address_subject(&source.ip));
        let pair = client_credentials(&req.authorization, &params)
            .ok()
            .map(|(client_id, _, _)| throttle::pair_subject(&client_id, &source.ip));
        let now = self.clock.now();
        if let Some(until) = self.store.blocked_until(pair.as_slice()).await? {
            return Err(blocked_for(until, now));
        }
        let sp = match self.authenticate(&req.authorization, &params).await {
            Ok(sp) => sp,
            Err(e) => {
                let blocked = self.store.blocked_until(address.as_slice()).await?;
                if e.counts_as_attack() {
                    let subjects: Vec<String> = pair.into_iter().chain(address).collect();
                    self.count_failure(&subjects).await;
                }
                return Err(match blocked {
                    Some(until) => blocked_for(until, now),
                    None => e,
                });
            }
        };
        let client = throttle::client_subject(&sp.client_id);
        if let Some(until) = self
            .store
            .blocked_until(std::slice::from_ref(&client))
            .await?
        {
            return Err(blocked_for(until, now));
        }
        let result = call(req, source.clone(), sp).await;
        if let Err(e) = &result
            && e.counts_as_attack()
        {
            self.count_failure(&[client]).await;
        }
        result
    }

    /// One more failure for each of `subjects`; a block it causes is logged and counted
    /// for operators.
    async fn count_failure(&self, subjects: &[String]) {
        match self
            .store
            .record_auth_failure(subjects, &self.config.throttle_limits())
            .await
        {
            Ok(blocked) => {
                for (subject, until) in blocked {
                    tracing::warn!(%subject, %until, "blocked after repeated failures");
                    self.metrics.blocked(throttle::kind_of(&subject));
                }
            }
            Err(err) => tracing::error!(error = %err, "could not count a failure"),
        }
    }

    /// A code presented again: every token issued from it is revoked, and the attempt
    /// recorded.
    async fn code_replayed(&self, grant: &Grant, source: &pb::Source) -> FrontError {
        let err = FrontError::CodeReused;
        if let Err(e) = self
            .store
            .revoke_code_tokens(&grant.code_hash, &grant.client_id)
            .await
        {
            return e;
        }
        self.record_failure(
            &grant.connection_id.to_string(),
            &err,
            source,
            &grant.client_id,
        )
        .await;
        err
    }

    /// Why a code was not redeemed, read from its grant: unknown or expired; another
    /// client's (refused before anything is burnt or revoked: a client must not spoil
    /// another's codes); used (a replay: its tokens are revoked); or presented with a
    /// wrong redirect URI or verifier, which burns it (whoever holds it is not the client
    /// that asked for it), or obtained without PKCE by a client no longer exempt, which
    /// burns it too.
    async fn code_refused(
        &self,
        code_hash: &[u8],
        sp: &reg::ServiceProvider,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        source: &pb::Source,
    ) -> FrontError {
        let client_id = sp.client_id.as_str();
        let grant = match self.store.grant(code_hash).await {
            Ok(Some(grant)) => grant,
            Ok(None) => return FrontError::CodeInvalid,
            Err(e) => return e,
        };
        if grant.client_id != client_id {
            let err = FrontError::CodeClientMismatch;
            self.record_failure(&grant.connection_id.to_string(), &err, source, client_id)
                .await;
            return err;
        }
        if grant.used {
            return self.code_replayed(&grant, source).await;
        }
        if grant.expires_at <= self.clock.now() {
            return FrontError::CodeInvalid;
        }
        let pkce = match (&grant.code_challenge, verifier) {
            // The exemption is the registry's word now, not when the code was issued
            // (OAuth 2.1 §4.1.1.3: a code without a challenge only from a client exempt).
            (None, None) if !sp.pkce_exempt => Err(FrontError::PkceExemptionLifted),
            (None, None) => Ok(()),
            (Some(challenge), Some(verifier))
                if (43..=128).contains(&verifier.len())
                    && constant_time_eq(&pkce_s256(verifier), challenge) =>
            {
                Ok(())
            }
            _ => Err(FrontError::PkceFailed),
        };
        let err = if redirect_uri != Some(grant.redirect_uri.as_str()) {
            FrontError::TokenRedirectUriMismatch
        } else if let Err(err) = pkce {
            err
        } else {
            // Every check holds now: the code expired between the two reads of the clock.
            tracing::warn!("a code passed every check after its redemption failed");
            return FrontError::CodeInvalid;
        };
        if let Err(e) = self.store.burn_code(code_hash, client_id).await {
            return e;
        }
        err
    }

    pub async fn token(&self, req: pb::TokenRequest) -> pb::ApiResponse {
        self.guarded(req, |req, source, sp| async move {
            self.token_inner(req, &source, sp).await
        })
        .await
    }

    async fn token_inner(
        &self,
        req: pb::TokenRequest,
        source: &pb::Source,
        sp: Arc<reg::ServiceProvider>,
    ) -> Result<Value, FrontError> {
        let params = params_of(req.params);
        let client_id = sp.client_id.clone();
        match params.single("grant_type")? {
            Some("authorization_code") => {}
            _ => return Err(FrontError::UnsupportedGrantType),
        }
        let code = params.single("code")?.ok_or(FrontError::CodeMissing)?;
        let code_hash = sha256(code);
        let redirect_uri = params.single("redirect_uri")?;
        let verifier = params.single("code_verifier")?;
        // The challenge a verifier answers; one of a wrong length answers none.
        let challenge = verifier.map(|v| {
            if (43..=128).contains(&v.len()) {
                pkce_s256(v)
            } else {
                String::new()
            }
        });
        // Chosen before the code is used: past that point nothing may fail but the hub.
        let encrypter = if sp.id_token_encrypted_response_alg.is_empty() {
            None
        } else {
            Some(relais_jose::Encrypter::new(
                &sp.jwks,
                &sp.id_token_encrypted_response_alg,
                &sp.id_token_encrypted_response_enc,
            )?)
        };
        let access_token = secrets::access_token_for(&client_id);
        let at_ttl = i64::from(self.config.access_token_ttl_seconds);
        let now = self.clock.now();
        // The redemption completes the step with the grant's connection and subjects.
        let issued = events::at(
            now,
            "",
            ConnectionStep::TokenIssued,
            Outcome::Success,
            source,
            |e| e.sp_id = Some(sp.client_id.clone()),
        )?;
        // The code is used and its token stored in one statement, only if every check
        // holds: a replay at any moment after it finds the token to revoke. Without a
        // verifier only a client exempt from PKCE may redeem one (a code without a
        // challenge, which the statement alone would take).
        let redeemed = if challenge.is_none() && !sp.pkce_exempt {
            None
        } else {
            self.store
                .redeem_code(
                    &code_hash,
                    &client_id,
                    redirect_uri,
                    challenge.as_deref(),
                    &sha256(&access_token),
                    now + Duration::seconds(at_ttl),
                    &[issued],
                )
                .await?
        };
        let Some(grant) = redeemed else {
            return Err(self
                .code_refused(&code_hash, &sp, redirect_uri, verifier, source)
                .await);
        };
        let key = self.keys.signer(types::id_token_alg(&sp))?;
        let sid = grant.sid.to_string();
        let c = id_token::IdToken {
            issuer: &self.config.issuer,
            sub: &grant.sub_fs,
            client_id: &sp.client_id,
            issued_at: ts(now),
            expires_at: ts(now) + i64::from(self.config.id_token_ttl_seconds),
            auth_time: ts(grant.auth_time),
            nonce: &grant.nonce,
            acr: &grant.acr,
            amr: &grant.amr,
            sid: &sid,
            at_hash: &at_hash(&access_token),
        }
        .claims();
        let id_token = key.sign(&c, "JWT")?;
        let id_token = match encrypter {
            None => id_token,
            Some(e) => e.encrypt(id_token.as_bytes(), Some("JWT"))?,
        };
        Ok(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": at_ttl,
            "id_token": id_token,
            "scope": grant.scopes.join(" "),
        }))
    }

    /// How userinfo answers `sp`, as it registered: JSON, a signed JWT, encrypted, or
    /// both. Made before the answer's step is recorded: the keys are found and the SP's
    /// encryption key checked here, so that afterwards nothing may fail but the hub.
    fn userinfo_form(&self, sp: &reg::ServiceProvider) -> Result<UserinfoForm, FrontError> {
        let signer = types::userinfo_alg(sp)
            .map(|alg| self.keys.signer(alg))
            .transpose()?;
        let encrypter = if sp.userinfo_encrypted_response_alg.is_empty() {
            None
        } else {
            Some(relais_jose::Encrypter::new(
                &sp.jwks,
                &sp.userinfo_encrypted_response_alg,
                &sp.userinfo_encrypted_response_enc,
            )?)
        };
        Ok(UserinfoForm {
            client_id: sp.client_id.clone(),
            signer,
            encrypter,
        })
    }

    /// The userinfo answer of `claims` in `form`.
    fn userinfo_answer(
        &self,
        mut claims: Map<String, Value>,
        form: &UserinfoForm,
    ) -> Result<pb::ApiResponse, FrontError> {
        if form.signer.is_none() && form.encrypter.is_none() {
            return Ok(json_ok(&Value::Object(claims)));
        }
        let (payload, cty) = if let Some(key) = &form.signer {
            claims.insert("iss".into(), Value::from(self.config.issuer.clone()));
            claims.insert("aud".into(), Value::from(form.client_id.clone()));
            claims.insert("iat".into(), Value::from(ts(self.clock.now())));
            (key.sign(&claims, "JWT")?, Some("JWT"))
        } else {
            (Value::Object(claims).to_string(), None)
        };
        let body = match &form.encrypter {
            Some(e) => e.encrypt(payload.as_bytes(), cty)?,
            None => payload,
        };
        Ok(pb::ApiResponse {
            http_status: 200,
            content_type: "application/jwt".into(),
            body,
            www_authenticate: String::new(),
            retry_after_seconds: 0,
        })
    }

    /// The client calling a back-channel endpoint, authenticated by the registry.
    async fn authenticate(
        &self,
        authorization: &str,
        params: &Params,
    ) -> Result<Arc<reg::ServiceProvider>, FrontError> {
        params.check_no_duplicates()?;
        let (client_id, secret, method) = client_credentials(authorization, params)?;
        if method == PRIVATE_KEY_JWT {
            return self.verify_assertion(&client_id, &secret).await;
        }
        self.partners
            .authenticate(&client_id, &secret, method)
            .await
    }

    /// private_key_jwt (RFC 7523): the assertion is signed by a key the SP registered,
    /// names the SP as `iss` and `sub`, is meant for this hub, is short-lived, and its
    /// `jti` is used once.
    async fn verify_assertion(
        &self,
        client_id: &str,
        assertion: &str,
    ) -> Result<Arc<reg::ServiceProvider>, FrontError> {
        let sp = match self.partners.sp(client_id).await {
            Ok(sp) => sp,
            Err(FrontError::UnknownClient) => return Err(FrontError::ClientAuthFailed),
            Err(e) => return Err(e),
        };
        if sp.token_endpoint_auth_method != PRIVATE_KEY_JWT {
            return Err(FrontError::ClientAuthMethodMismatch(
                sp.token_endpoint_auth_method.clone(),
            ));
        }
        let keys = KeySet::from_jwks_json(&sp.jwks).map_err(|_| FrontError::ClientAuthFailed)?;
        let claims = keys
            .verify(assertion)
            .map_err(|_| FrontError::ClientAuthFailed)?;
        let text = |n: &str| claims.get(n).and_then(Value::as_str);
        let issuer = &self.config.issuer;
        // The issuer alone, as one string (RFC 7523bis): an assertion made for a token
        // endpoint URL, or for several audiences, may have been asked for by another
        // server posing as this one (the audience injection attack).
        let audience_ok = claims.get("aud").and_then(Value::as_str) == Some(issuer.as_str());
        let now = ts(self.clock.now());
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        // Short-lived: an assertion valid for hours could be replayed once its jti is purged.
        let fresh = exp > now && exp <= now + 600;
        let jti = text("jti").filter(|j| !j.is_empty() && j.len() <= 256);
        if text("iss") != Some(client_id) || text("sub") != Some(client_id) || !fresh {
            return Err(FrontError::ClientAuthFailed);
        }
        if !audience_ok {
            return Err(FrontError::AssertionAudience(issuer.clone()));
        }
        let Some(jti) = jti else {
            return Err(FrontError::ClientAuthFailed);
        };
        let expires =
            OffsetDateTime::from_unix_timestamp(exp).map_err(|_| FrontError::ClientAuthFailed)?;
        if !self
            .store
            .use_assertion(
                &sha256(&format!("{client_id}\u{0}{jti}")),
                client_id,
                expires,
            )
            .await?
        {
            return Err(FrontError::ClientAuthFailed);
        }
        if !PartnerStatus::Active.is(sp.status) {
            return Err(FrontError::ClientSuspended);
        }
        Ok(sp)
    }

    /// The `token` of a revocation or introspection request, and its hint checked.
    fn presented_token(params: &Params) -> Result<String, FrontError> {
        match params.single("token_type_hint")? {
            None | Some("access_token") | Some("refresh_token") => {}
            Some(_) => return Err(FrontError::UnsupportedTokenType),
        }
        Ok(params
            .single("token")?
            .ok_or(FrontError::TokenParamMissing)?
            .to_string())
    }

    pub async fn revoke(&self, req: pb::TokenRequest) -> pb::ApiResponse {
        self.guarded(req, |req, source, sp| async move {
            let params = params_of(req.params);
            let token = Self::presented_token(&params)?;
            // RFC 7009 §2.2: an unknown or foreign token is answered as a success.
            if let Some(connection) = self
                .store
                .revoke_token(&sha256(&token), &sp.client_id)
                .await?
            {
                let revoked = events::at(
                    self.clock.now(),
                    &connection.to_string(),
                    ConnectionStep::TokenRevoked,
                    Outcome::Success,
                    &source,
                    |e| e.sp_id = Some(sp.client_id.clone()),
                )?;
                self.store.record_events(&[revoked]).await?;
            }
            Ok(json!({}))
        })
        .await
    }

    pub async fn introspect(&self, req: pb::TokenRequest) -> pb::ApiResponse {
        self.guarded(req, |req, _source, sp| async move {
            let params = params_of(req.params);
            let token = Self::presented_token(&params)?;
            // Only the client a token was issued to learns anything about it.
            let record = self
                .store
                .token_record(&sha256(&token), &sp.client_id)
                .await?;
            Ok(match record {
                Some(r) if r.active => json!({
                    "active": true,
                    "scope": r.scopes.join(" "),
                    "client_id": r.token.client_id,
                    "token_type": "Bearer",
                    "exp": ts(r.expires_at),
                    "iat": ts(r.issued_at),
                    "sub": r.token.sub_fs,
                    "aud": r.token.client_id,
                    "iss": self.config.issuer,
                    "acr": r.token.acr,
                }),
                _ => json!({ "active": false }),
            })
        })
        .await
    }

    pub async fn userinfo(&self, req: pb::UserInfoRequest) -> pb::ApiResponse {
        let source = req.source.clone().unwrap_or_default();
        match self.userinfo_inner(req, &source).await {
            Ok(answer) => answer,
            Err(e) => json_error(&e, Some("Bearer"), &source.request_id),
        }
    }

    async fn userinfo_inner(
        &self,
        req: pb::UserInfoRequest,
        source: &pb::Source,
    ) -> Result<pb::ApiResponse, FrontError> {
        let params = params_of(req.params);
        if req.params_in_query && params.single("access_token")?.is_some() {
            return Err(FrontError::AccessTokenInQuery);
        }
        let header = req
            .authorization
            .trim()
            .strip_prefix("Bearer ")
            .map(str::trim);
        let token = match (header, params.single("access_token")?) {
            (Some(_), Some(_)) => return Err(FrontError::MultipleClientAuth),
            (Some(t), None) | (None, Some(t)) => t.to_string(),
            (None, None) => return Err(FrontError::InvalidToken),
        };
        let token_hash = sha256(&token);
        let Some(client_id) = secrets::client_of_access_token(&token) else {
            return self.userinfo_of_earlier_token(&token_hash, source).await;
        };
        // A suspended SP's tokens stop working at once.
        let sp = self
            .active_sp(client_id)
            .await
            .map_err(|_| FrontError::InvalidToken)?;
        let form = self.userinfo_form(&sp)?;
        // Completed from the token by the statement that reads it.
        let served = events::at(
            self.clock.now(),
            "",
            ConnectionStep::UserinfoServed,
            Outcome::Success,
            source,
            |e| e.sp_id = Some(sp.client_id.clone()),
        )?;
        // Read and recorded in one statement, the answer's form ready before: the answer
        // leaves only once its step is durable, and the step is recorded only for an
        // answer that can be made.
        let at = self
            .store
            .serve_userinfo(&token_hash, client_id, &[served])
            .await?
            .ok_or(FrontError::InvalidToken)?;
        self.userinfo_answer(userinfo_claims(at), &form)
    }

    /// Userinfo for an access token issued before tokens named their client: read, then
    /// recorded.
    async fn userinfo_of_earlier_token(
        &self,
        token_hash: &[u8],
        source: &pb::Source,
    ) -> Result<pb::ApiResponse, FrontError> {
        let at = self
            .store
            .access_token(token_hash)
            .await?
            .ok_or(FrontError::InvalidToken)?;
        // A suspended SP's tokens stop working at once.
        let sp = self
            .active_sp(&at.client_id)
            .await
            .map_err(|_| FrontError::InvalidToken)?;
        let form = self.userinfo_form(&sp)?;
        let served = events::at(
            self.clock.now(),
            &at.connection_id.to_string(),
            ConnectionStep::UserinfoServed,
            Outcome::Success,
            source,
            |e| {
                e.sp_id = Some(at.client_id.clone());
                e.idp_id = Some(at.idp_id.clone());
                e.acr = Some(at.acr.clone());
                e.sub_fs = Some(at.sub_fs.clone());
                e.account_id = Some(at.account_id.to_string());
            },
        )?;
        let answer = self.userinfo_answer(userinfo_claims(at), &form)?;
        self.store.record_events(&[served]).await?;
        Ok(answer)
    }

    /// The hub's own resource servers (support) ask whether a token is live and was
    /// issued to `client_id`.
    pub async fn verify_access_token(
        &self,
        req: pb::VerifyAccessTokenRequest,
    ) -> Result<pb::VerifiedAccessToken, FrontError> {
        let hash = sha256(&req.token);
        let at = self
            .store
            .access_token(&hash)
            .await?
            .ok_or(FrontError::InvalidToken)?;
        // Only the client it was issued to, and only while that client is active.
        if req.client_id.is_empty() || at.client_id != req.client_id {
            return Err(FrontError::InvalidToken);
        }
        self.active_sp(&at.client_id)
            .await
            .map_err(|_| FrontError::InvalidToken)?;
        Ok(pb::VerifiedAccessToken {
            sub: at.sub_fs,
            acr: at.acr,
            idp_id: at.idp_id,
            claims_json: at.claims.to_string(),
            sub_fi: self.store.token_sub_fi(&hash).await?.unwrap_or_default(),
            account_id: at.account_id.to_string(),
        })
    }
}

fn blocked_for(until: OffsetDateTime, now: OffsetDateTime) -> FrontError {
    let secs = (until - now).whole_seconds().max(1);
    FrontError::ClientBlocked(u32::try_from(secs).unwrap_or(u32::MAX))
}

/// How userinfo answers an SP (see `Front::userinfo_form`).
struct UserinfoForm {
    client_id: String,
    signer: Option<Arc<relais_jose::SigningKey>>,
    encrypter: Option<relais_jose::Encrypter>,
}

/// The claims userinfo answers for a token: those it was granted, and its subject.
fn userinfo_claims(at: AccessToken) -> Map<String, Value> {
    let mut body = match at.claims {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    body.insert("sub".into(), Value::from(at.sub_fs));
    body
}
