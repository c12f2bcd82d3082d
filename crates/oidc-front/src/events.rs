//! What the front publishes about connections: each step with its own time and the
//! address the browser or the SP spoke from.

use relais_bus::Event;
use relais_bus::events::{ConnectionEvent, ConnectionStep, Outcome, TimelineStep};
use relais_proto::oidc_front::v1 as pb;
use time::OffsetDateTime;

use crate::domain::flow::{Flow, Step};
use crate::error::FrontError;

pub const SOURCE: &str = "oidc-front";

/// Unix milliseconds of `t`, as flows keep them.
pub fn millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn event_at(
    at: OffsetDateTime,
    mut e: ConnectionEvent,
    ip: &str,
    port: u32,
    request_id: &str,
) -> Result<Event, FrontError> {
    e.source_ip = Some(ip.to_string()).filter(|s| !s.is_empty());
    e.source_port = u16::try_from(port).ok().filter(|p| *p != 0);
    e.request_id = Some(request_id.to_string()).filter(|s| !s.is_empty());
    Ok(Event::from_payload_at(
        uuid::Uuid::new_v4(),
        at,
        SOURCE,
        &e,
    )?)
}

/// A step taken at `when`, for a request from `source`.
pub fn at(
    when: OffsetDateTime,
    connection_id: &str,
    step: ConnectionStep,
    outcome: Outcome,
    source: &pb::Source,
    fill: impl FnOnce(&mut ConnectionEvent),
) -> Result<Event, FrontError> {
    let mut e = ConnectionEvent::new(connection_id, step, outcome);
    fill(&mut e);
    event_at(when, e, &source.ip, source.port, &source.request_id)
}

/// The record of a sign-in at its last step (`code_issued`, or `failed`): every step the
/// flow took before it, with its own time and address, in one event.
pub fn sign_in_record(
    flow: &Flow,
    when: OffsetDateTime,
    step: ConnectionStep,
    outcome: Outcome,
    source: &pb::Source,
    fill: impl FnOnce(&mut ConnectionEvent),
) -> Result<Event, FrontError> {
    at(when, &flow.connection_id, step, outcome, source, |e| {
        e.sp_id = Some(flow.client_id.clone());
        e.idp_id = flow.idp_id.clone();
        e.acr_asked = Some(flow.acr_min.clone()).filter(|a| !a.is_empty());
        e.timeline = flow.steps.iter().filter_map(timeline_step).collect();
        fill(e);
    })
}

fn timeline_step(s: &Step) -> Option<TimelineStep> {
    let step = ConnectionStep::ALL
        .into_iter()
        .find(|k| k.as_str() == s.step)?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(s.at_ms) * 1_000_000).ok()?;
    Some(TimelineStep {
        step,
        at,
        source_ip: Some(s.ip.clone()).filter(|ip| !ip.is_empty()),
        source_port: u16::try_from(s.port).ok().filter(|p| *p != 0),
        request_id: Some(s.request_id.clone()).filter(|r| !r.is_empty()),
    })
}
