use relais_support::events::{IncidentEvent, IncidentState};

use crate::common::{IDP, Support, contact, staff, text};

#[tokio::test]
async fn an_incident_of_one_idp_is_announced_until_support_resolves_it() {
    let mut support = Support::start().await;
    let mut incidents = support.listen("support.incident.*").await;
    let idp = contact(IDP, "idp-a");
    let ticket = support
        .open(idp.clone(), (IDP, "idp-a"), "one_partner", 0)
        .await;
    assert_eq!(ticket.severity, 2);
    assert_eq!(ticket.disabled_idp, "idp-a");
    let opened = incidents
        .wait_for("the incident", |e| e.kind == "support.incident.opened")
        .await;
    let payload: IncidentEvent = opened.payload().unwrap();
    assert_eq!(payload.idp_id, "idp-a");
    assert_eq!(payload.state, IncidentState::Opened);
    assert_eq!(payload.ticket_id.to_string(), ticket.id);

    let resolved = support
        .client
        .resolve(text(
            staff("level3"),
            &ticket.id,
            "Their signing key rotated; fixed",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.disabled_idp, "");
    let end: IncidentEvent = incidents
        .wait_for("the end of the incident", |e| {
            e.kind == "support.incident.resolved"
        })
        .await
        .payload()
        .unwrap();
    assert_eq!(end.idp_id, "idp-a");

    // A remark says it is not over: the IdP is announced down again.
    support
        .client
        .comment(relais_proto::support::v1::CommentRequest {
            caller: Some(idp),
            ticket_id: ticket.id.clone(),
            body: "Still failing".into(),
            attachments: vec![],
        })
        .await
        .unwrap();
    let again: IncidentEvent = incidents
        .wait_for("the incident again", |e| {
            e.kind == "support.incident.opened"
        })
        .await
        .payload()
        .unwrap();
    assert_eq!(again.ticket_id.to_string(), ticket.id);

    // An information request from an IdP disables nothing.
    let info = support
        .open(
            contact(IDP, "idp-b"),
            (IDP, "idp-b"),
            "information_request",
            0,
        )
        .await;
    assert_eq!(info.disabled_idp, "");
    support.stop().await;
}
