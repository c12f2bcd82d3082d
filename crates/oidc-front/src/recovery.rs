//! No dead end once the SP's redirect URI is trusted: a failed attempt offers the chooser
//! again ("choose another account") and the way back to the SP with an OAuth error.

use relais_bus::events::ConnectionStep;
use relais_proto::oidc_front::v1 as pb;
use uuid::Uuid;

use crate::domain::flow::{Flow, FlowStatus};
use crate::domain::secrets::random_token;
use crate::error::FrontError;
use crate::events::millis;
use crate::flow::locale_of;
use crate::front::{Front, cookie, remove_cookie};
use crate::responses::{error_page, redirect, with_query};

impl Front {
    /// The chooser again, from the browser's flow: after a failed attempt ("choose
    /// another account"), or back from the IdP.
    pub async fn show_chooser(&self, req: pb::ShowChooserRequest) -> pb::FlowResponse {
        let source = req.source.unwrap_or_default();
        let now = self.clock.now();
        let mut flow = match Flow::open(&self.sealer, &req.flow, now.unix_timestamp()) {
            Ok(f) => f,
            Err(e) => return error_page(&e, locale_of(&source), &source.request_id),
        };
        let result = async {
            let sp = self.active_sp(&flow.client_id).await?;
            let idps = self.partners.idps().await?;
            let visible = self.visible_idps(&sp, &idps);
            flow.set_stage(FlowStatus::Choosing);
            flow.round_trip.clear();
            if flow.steps.last().map(|s| s.step.as_str())
                != Some(ConnectionStep::ChooserShown.as_str())
            {
                flow.push(
                    ConnectionStep::ChooserShown,
                    millis(now),
                    &source.ip,
                    source.port,
                    &source.request_id,
                );
            }
            let sealed = flow.seal(&self.sealer)?;
            let mut response = self.chooser(&flow, &sp, &visible);
            response.flow_cookie = cookie(sealed, self.config.flow_ttl_seconds);
            Ok::<_, FrontError>(response)
        }
        .await;
        result.unwrap_or_else(|e| error_page(&e, flow.locale(), &source.request_id))
    }

    /// A failed attempt of a trusted sign-in: recorded, then never a dead end. The IdP's
    /// own refusal goes straight back to the SP; anything else is a page with the way
    /// back to the SP and the chooser again.
    pub(crate) async fn failed_attempt(
        &self,
        flow: &Flow,
        err: &FrontError,
        source: &pb::Source,
    ) -> pb::FlowResponse {
        self.record_failed_flow(flow, err, source).await;
        if matches!(err, FrontError::Idp { code, .. } if code == "idp_access_denied")
            && let Ok(url) = self.back_to_sp(flow, err)
        {
            let mut r = redirect(url);
            r.flow_cookie = remove_cookie();
            return r;
        }
        let page = error_page(err, flow.locale(), &source.request_id);
        let mut page = self.with_ways_out(page, flow, err);
        let retry = flow.retried(Uuid::new_v4().to_string(), random_token());
        page.flow_cookie = match retry.seal(&self.sealer) {
            Ok(sealed) => cookie(sealed, self.config.flow_ttl_seconds),
            Err(_) => remove_cookie(),
        };
        page
    }

    /// The SP's redirect URI with the OAuth error of `err`, its stable code, the SP's
    /// state and the issuer.
    fn back_to_sp(&self, flow: &Flow, err: &FrontError) -> Result<String, FrontError> {
        with_query(
            &flow.redirect_uri,
            &[
                ("error", err.sp_error()),
                ("error_description", &err.description()),
                ("state", &flow.state),
                ("iss", &self.config.issuer),
            ],
        )
    }

    /// An error page of a trusted flow, with the way back to the SP and the chooser again.
    pub(crate) fn with_ways_out(
        &self,
        mut page: pb::FlowResponse,
        flow: &Flow,
        err: &FrontError,
    ) -> pb::FlowResponse {
        if let Some(pb::flow_response::Outcome::Error(e)) = page.outcome.as_mut() {
            e.back_url = self.back_to_sp(flow, err).unwrap_or_default();
            e.sp_name = flow.sp_name.clone();
            e.retry_url = "/chooser".into();
        }
        page
    }
}
