//! The front's gRPC face: decodes each call, hands it to its flow, encodes the answer.

use relais_proto::oidc_front::v1 as pb;
use relais_proto::oidc_front::v1::oidc_front_server::OidcFront;
use tonic::{Request, Response, Status};

use crate::error::FrontError;
use crate::front::Front;

#[tonic::async_trait]
impl OidcFront for Front {
    async fn discovery(&self, _r: Request<pb::Empty>) -> Result<Response<pb::Json>, Status> {
        Ok(Response::new(pb::Json {
            json: self.discovery_json.clone(),
            max_age_seconds: 0,
        }))
    }

    async fn jwks(&self, _r: Request<pb::Empty>) -> Result<Response<pb::Json>, Status> {
        Ok(Response::new(pb::Json {
            json: self.keys.jwks_json(),
            max_age_seconds: self.config.jwks_cache_seconds,
        }))
    }

    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::FlowResponse>, Status> {
        Ok(Response::new(
            Front::authorize(self, request.into_inner()).await,
        ))
    }

    async fn choose_idp(
        &self,
        request: Request<pb::ChooseIdpRequest>,
    ) -> Result<Response<pb::FlowResponse>, Status> {
        Ok(Response::new(self.choose(request.into_inner()).await))
    }

    async fn show_chooser(
        &self,
        request: Request<pb::ShowChooserRequest>,
    ) -> Result<Response<pb::FlowResponse>, Status> {
        Ok(Response::new(
            Front::show_chooser(self, request.into_inner()).await,
        ))
    }

    async fn idp_callback(
        &self,
        request: Request<pb::IdpCallbackRequest>,
    ) -> Result<Response<pb::FlowResponse>, Status> {
        Ok(Response::new(self.callback(request.into_inner()).await))
    }

    async fn token(
        &self,
        request: Request<pb::TokenRequest>,
    ) -> Result<Response<pb::ApiResponse>, Status> {
        Ok(Response::new(
            Front::token(self, request.into_inner()).await,
        ))
    }

    async fn user_info(
        &self,
        request: Request<pb::UserInfoRequest>,
    ) -> Result<Response<pb::ApiResponse>, Status> {
        Ok(Response::new(self.userinfo(request.into_inner()).await))
    }

    async fn revoke(
        &self,
        request: Request<pb::TokenRequest>,
    ) -> Result<Response<pb::ApiResponse>, Status> {
        Ok(Response::new(
            Front::revoke(self, request.into_inner()).await,
        ))
    }

    async fn introspect(
        &self,
        request: Request<pb::TokenRequest>,
    ) -> Result<Response<pb::ApiResponse>, Status> {
        Ok(Response::new(
            Front::introspect(self, request.into_inner()).await,
        ))
    }

    async fn list_blocks(&self, _r: Request<pb::Empty>) -> Result<Response<pb::Blocks>, Status> {
        let blocks = self
            .store
            .blocks()
            .await
            .map_err(Status::from)?
            .into_iter()
            .map(|(subject, until, blocks, failures)| pb::Block {
                subject,
                blocked_until: until
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                blocks,
                failures,
            })
            .collect();
        Ok(Response::new(pb::Blocks { blocks }))
    }

    async fn clear_block(
        &self,
        request: Request<pb::ClearBlockRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let subject = request.into_inner().subject;
        let cleared = self
            .store
            .clear_block(&subject)
            .await
            .map_err(Status::from)?;
        if !cleared {
            return Err(Status::not_found("no such subject"));
        }
        tracing::info!(subject = %subject, "block lifted by an operator");
        Ok(Response::new(pb::Empty {}))
    }

    async fn rotate_keys(
        &self,
        _r: Request<pb::Empty>,
    ) -> Result<Response<pb::RotatedKeys>, Status> {
        let rfc3339 = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let keys = self
            .signing
            .rotate()
            .await
            .map_err(Status::from)?
            .into_iter()
            .map(|r| pb::RotatedKey {
                alg: r.alg.to_string(),
                kid: r.kid,
                signs_from: rfc3339(r.activates_at),
                replaced_kids: r.replaced,
                replaced_retire_at: rfc3339(r.replaced_retire_at),
            })
            .collect();
        tracing::info!("signing keys rotated by an operator");
        Ok(Response::new(pb::RotatedKeys { keys }))
    }

    async fn verify_access_token(
        &self,
        request: Request<pb::VerifyAccessTokenRequest>,
    ) -> Result<Response<pb::VerifiedAccessToken>, Status> {
        match Front::verify_access_token(self, request.into_inner()).await {
            Ok(v) => Ok(Response::new(v)),
            Err(FrontError::InvalidToken) => Err(relais_runtime::status_with_code(
                tonic::Code::Unauthenticated,
                "the access token is not live or not this client's".into(),
                "invalid_token",
            )),
            Err(e) => Err(e.into()),
        }
    }

    async fn suspend_account(
        &self,
        request: Request<pb::SuspendAccountRequest>,
    ) -> Result<Response<pb::AccountSuspension>, Status> {
        let operator = operator_of(&request);
        Front::suspend_account(self, request.into_inner(), &operator)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn lift_account_suspension(
        &self,
        request: Request<pb::LiftAccountSuspensionRequest>,
    ) -> Result<Response<pb::AccountSuspension>, Status> {
        let operator = operator_of(&request);
        Front::lift_account_suspension(self, request.into_inner(), &operator)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn end_session(
        &self,
        request: Request<pb::EndSessionRequest>,
    ) -> Result<Response<pb::FlowResponse>, Status> {
        Ok(Response::new(
            Front::end_session(self, request.into_inner()).await,
        ))
    }

    async fn confirm_end_session(
        &self,
        request: Request<pb::ConfirmEndSessionRequest>,
    ) -> Result<Response<pb::FlowResponse>, Status> {
        Ok(Response::new(
            Front::confirm_end_session(self, request.into_inner()).await,
        ))
    }

    async fn logout_callback(
        &self,
        request: Request<pb::LogoutCallbackRequest>,
    ) -> Result<Response<pb::FlowResponse>, Status> {
        Ok(Response::new(
            Front::logout_callback(self, request.into_inner()).await,
        ))
    }
}

/// Who made an operator's call, as its record names them (the certificate's name).
fn operator_of<T>(request: &Request<T>) -> String {
    match relais_runtime::peer::caller(request) {
        Some(relais_runtime::Caller::Verified(peer)) => peer.dns_name(),
        _ => "unverified".to_string(),
    }
}
