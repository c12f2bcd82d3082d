use relais_bus::{
    BusError, Event, Payload,
    events::{ConnectionEvent, ConnectionStep, Outcome, PartnerEvent, PartnerKind, PartnerStatus},
};
use serde_json::json;
use time::macros::datetime;
use uuid::Uuid;

#[test]
fn each_step_names_its_kind_as_it_is_spelled_in_json() {
    for step in ConnectionStep::ALL {
        let spelled = serde_json::to_value(step).unwrap();
        assert_eq!(spelled, json!(step.as_str()));
        let payload = ConnectionEvent::new("c", step, Outcome::Success);
        assert_eq!(payload.kind(), format!("connection.{}", step.as_str()));
    }
    let payload = ConnectionEvent::new("c", ConnectionStep::TokenIssued, Outcome::Success);
    assert_eq!(payload.kind(), "connection.token_issued");
}

#[test]
fn the_wire_form_is_plain_json_with_an_rfc3339_time() {
    let id = Uuid::new_v4();
    let mut payload = ConnectionEvent::new("cnx-9", ConnectionStep::IdpCallback, Outcome::Failure);
    payload.error_code = Some("idp_denied".to_owned());
    payload.source_ip = Some("203.0.113.7".to_owned());
    payload.source_port = Some(51_234);
    let event = Event::from_payload_at(
        id,
        datetime!(2025-03-01 09:30:00.5 UTC),
        "idp-bridge",
        &payload,
    )
    .unwrap();

    let wire: serde_json::Value = serde_json::from_slice(&event.to_json().unwrap()).unwrap();
    assert_eq!(wire["id"], json!(id.to_string()));
    assert_eq!(wire["kind"], json!("connection.idp_callback"));
    assert_eq!(wire["occurred_at"], json!("2025-03-01T09:30:00.5Z"));
    assert_eq!(wire["source"], json!("idp-bridge"));
    assert_eq!(wire["payload"]["step"], json!("idp_callback"));
    assert_eq!(wire["payload"]["outcome"], json!("failure"));
    assert_eq!(wire["payload"]["source_port"], json!(51_234));

    let back = Event::from_json(&event.to_json().unwrap()).unwrap();
    assert_eq!(back, event);
    assert_eq!(back.payload::<ConnectionEvent>().unwrap(), payload);
}

#[test]
fn partner_events_are_routed_by_partner_kind() {
    let sp = PartnerEvent {
        partner: PartnerKind::Sp,
        partner_id: "sp-42".to_owned(),
        status: PartnerStatus::Suspended,
    };
    let idp = PartnerEvent {
        partner: PartnerKind::Idp,
        ..sp.clone()
    };
    assert_eq!(sp.kind(), "registry.sp.updated");
    assert_eq!(idp.kind(), "registry.idp.updated");
    let event = Event::from_payload("registry", &sp).unwrap();
    assert_eq!(event.payload["status"], json!("suspended"));
    assert_eq!(event.payload::<PartnerEvent>().unwrap(), sp);
}

#[test]
fn a_partner_status_keeps_each_spelling() {
    // On the bus as published since the first events; stored and in gRPC as the registry has them.
    let wire = |status| {
        Event::from_payload(
            "registry",
            &PartnerEvent {
                partner: PartnerKind::Sp,
                partner_id: "sp".into(),
                status,
            },
        )
        .unwrap()
        .payload["status"]
            .clone()
    };
    assert_eq!(wire(PartnerStatus::Active), json!("production"));
    assert_eq!(wire(PartnerStatus::Suspended), json!("suspended"));
    for status in [PartnerStatus::Active, PartnerStatus::Suspended] {
        assert_eq!(PartnerStatus::parse(status.as_str()), Some(status));
        assert_eq!(PartnerStatus::from_proto(status.to_proto()), Some(status));
        assert!(status.is(status.to_proto()));
    }
    assert_eq!(PartnerStatus::Active.as_str(), "active");
    assert_eq!(
        PartnerStatus::Active.to_proto(),
        relais_proto::registry::v1::PartnerStatus::Active as i32
    );
    assert_eq!(PartnerStatus::parse("production"), None);
    assert_eq!(PartnerStatus::from_proto(0), None);
    assert!(!PartnerStatus::Active.is(0));
    assert!(!PartnerStatus::Active.is(PartnerStatus::Suspended.to_proto()));
}

#[test]
fn a_partner_kind_keeps_each_spelling() {
    for kind in [PartnerKind::Sp, PartnerKind::Idp] {
        assert_eq!(PartnerKind::parse(kind.as_str()), Some(kind));
        assert_eq!(PartnerKind::from_proto(kind.to_proto()), Some(kind));
    }
    assert_eq!(
        PartnerKind::Idp.to_proto(),
        relais_proto::support::v1::PartnerKind::Idp as i32
    );
    assert_eq!(PartnerKind::parse("SP"), None);
    assert_eq!(PartnerKind::from_proto(0), None);
}

#[test]
fn a_payload_is_not_read_back_under_another_kind() {
    let payload = ConnectionEvent::new("c", ConnectionStep::CodeIssued, Outcome::Success);
    let mut event = Event::from_payload("oidc-front", &payload).unwrap();
    event.kind = "connection.token_issued".to_owned();
    assert!(matches!(
        event.payload::<ConnectionEvent>(),
        Err(BusError::KindMismatch { .. })
    ));
    assert!(matches!(
        event.payload::<PartnerEvent>(),
        Err(BusError::Json(_))
    ));
}

#[test]
fn optional_details_may_be_absent_from_the_json() {
    let event = Event::new(
        "connection.chooser_shown",
        "gateway",
        json!({"connection_id": "c", "step": "chooser_shown", "outcome": "success"}),
    );
    let payload: ConnectionEvent = event.payload().unwrap();
    assert_eq!(payload.sp_id, None);
    assert_eq!(payload.source_port, None);
}
