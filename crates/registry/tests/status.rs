#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use relais_bus::events::{PartnerEvent, PartnerKind, PartnerStatus as BusStatus};
use relais_proto::registry::v1::{GetServiceProviderRequest, PartnerStatus, SetStatusRequest};
use tonic::Code;

use crate::authenticate::authenticate;
use crate::common::{BASIC_SECRET, POST_SECRET, Registry, error_code, seed};

#[tokio::test]
async fn a_suspended_sp_is_refused_recorded_and_announced() {
    let mut registry = Registry::start(&seed(BASIC_SECRET)).await;
    let mut listener = registry.listen("registry.sp.updated").await;

    let sp = registry
        .client
        .set_service_provider_status(SetStatusRequest {
            id: "sp-basic".into(),
            status: PartnerStatus::Suspended as i32,
            reason: "credentials leaked".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sp.status, PartnerStatus::Suspended as i32);
    let stored = registry
        .client
        .get_service_provider(GetServiceProviderRequest {
            client_id: "sp-basic".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.status, PartnerStatus::Suspended as i32);

    // Refused at once, with its own code, to the holder of the right secret only.
    let refused = authenticate(
        &mut registry.client,
        "sp-basic",
        BASIC_SECRET,
        "client_secret_basic",
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(error_code(&refused), "client_suspended");
    let wrong = authenticate(
        &mut registry.client,
        "sp-basic",
        POST_SECRET,
        "client_secret_basic",
    )
    .await
    .unwrap_err();
    assert_eq!(error_code(&wrong), "client_authentication_failed");
    // Only that SP.
    authenticate(
        &mut registry.client,
        "sp-post",
        POST_SECRET,
        "client_secret_post",
    )
    .await
    .unwrap();

    // Recorded, with the reason.
    let rows = registry
        .sql
        .get()
        .await
        .unwrap()
        .query(
            "SELECT partner_kind, partner_id, status, reason FROM status_changes ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let changes: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        changes,
        [(
            "sp".to_owned(),
            "sp-basic".to_owned(),
            "suspended".to_owned(),
            "credentials leaked".to_owned()
        )]
    );

    // Announced on the bus (the seed's own announcements may come first).
    let event = listener
        .wait_for("sp-basic's suspension", |e| {
            e.payload::<PartnerEvent>()
                .is_ok_and(|p| p.partner_id == "sp-basic" && p.status == BusStatus::Suspended)
        })
        .await;
    assert_eq!(event.kind, "registry.sp.updated");
    assert_eq!(event.source, "registry");
    assert_eq!(
        event.payload::<PartnerEvent>().unwrap().partner,
        PartnerKind::Sp
    );

    // Reactivated: accepted again, recorded and announced too.
    registry
        .client
        .set_service_provider_status(SetStatusRequest {
            id: "sp-basic".into(),
            status: PartnerStatus::Active as i32,
            reason: "secret rotated".into(),
        })
        .await
        .unwrap();
    authenticate(
        &mut registry.client,
        "sp-basic",
        BASIC_SECRET,
        "client_secret_basic",
    )
    .await
    .unwrap();
    listener
        .wait_for("sp-basic's reactivation", |e| {
            e.payload::<PartnerEvent>()
                .is_ok_and(|p| p.partner_id == "sp-basic" && p.status == BusStatus::Active)
        })
        .await;
    let changes: i64 = registry
        .sql
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM status_changes WHERE status = 'active'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(changes, 1);

    registry.stop().await;
}

#[tokio::test]
async fn suspending_an_unknown_sp_changes_nothing() {
    let mut registry = Registry::start(&seed(BASIC_SECRET)).await;

    let unknown = registry
        .client
        .set_service_provider_status(SetStatusRequest {
            id: "sp-nope".into(),
            status: PartnerStatus::Suspended as i32,
            reason: "typo".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(error_code(&unknown), "unknown_client");
    let unspecified = registry
        .client
        .set_service_provider_status(SetStatusRequest {
            id: "sp-basic".into(),
            status: PartnerStatus::Unspecified as i32,
            reason: "no status".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unspecified.code(), Code::InvalidArgument);

    let changes: i64 = registry
        .sql
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM status_changes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(changes, 0);
    authenticate(
        &mut registry.client,
        "sp-basic",
        BASIC_SECRET,
        "client_secret_basic",
    )
    .await
    .unwrap();

    registry.stop().await;
}
