//! The gauges of the support service, served at `/metrics` in the Prometheus text format
//! (version 0.0.4) on an address of its own (`metrics_listen`), meant for a scraper on a
//! private network, never for partners. Each scrape computes them from the database with
//! the injected clock: the indicator over a rolling window, overall and per partner, and
//! tickets by status. Written by hand: a few lines of text, where a metrics crate would
//! bring a global registry and series that outlive the partners they describe.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::SignedDuration;
use relais_runtime::Shutdown;
use tokio::net::TcpListener;

use crate::desk::Desk;
use crate::domain::indicator::{Report, Share};
use crate::domain::ticket::Status;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const RATIO: &str = "relais_support_incidents_resolved_within_target_ratio";
const TARGET: &str = "relais_support_incidents_target_ratio";
const TICKETS: &str = "relais_support_tickets";

/// The share judged so far, as a ratio; none while nothing is judged (a scraper then sees
/// no sample rather than a made-up 0 or 1).
fn ratio(share: &Share) -> Option<f64> {
    let judged = share.resolved_in_time + share.late;
    (judged > 0).then(|| share.resolved_in_time as f64 / judged as f64)
}

/// A label value, escaped as the text format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition of `report` and of the ticket counts.
pub fn render(
    report: &Report,
    resolution_business_hours: u32,
    window_days: u32,
    tickets: &[(Status, i64)],
) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "# HELP {RATIO} Share of the operating incidents received in the last {window_days} days \
         resolved within {resolution_business_hours} business hours, among those judged."
    );
    let _ = writeln!(out, "# TYPE {RATIO} gauge");
    if let Some(r) = ratio(&report.overall) {
        let _ = writeln!(out, "{RATIO} {r}");
    }
    for (partner, share) in &report.per_partner {
        if let Some(r) = ratio(share) {
            let _ = writeln!(
                out,
                "{RATIO}{{partner=\"{}\"}} {r}",
                label(&partner.to_string())
            );
        }
    }
    let _ = writeln!(out, "# HELP {TARGET} The target of {RATIO}.");
    let _ = writeln!(out, "# TYPE {TARGET} gauge");
    let _ = writeln!(out, "{TARGET} {}", report.target_percent / 100.0);
    let _ = writeln!(out, "# HELP {TICKETS} Tickets by status.");
    let _ = writeln!(out, "# TYPE {TICKETS} gauge");
    for (status, n) in tickets {
        let _ = writeln!(out, "{TICKETS}{{status=\"{}\"}} {n}", status.as_str());
    }
    out
}

struct Gauges {
    desk: Arc<Desk>,
    window_days: u32,
}

async fn metrics(State(gauges): State<Arc<Gauges>>) -> Response {
    let window = SignedDuration::from_hours(24 * i64::from(gauges.window_days));
    match gauges.desk.gauges(window).await {
        Ok((report, tickets)) => {
            let hours = gauges.desk.indicator_config().resolution_business_hours;
            let body = render(&report, hours, gauges.window_days, &tickets);
            ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "support metrics not computed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "support metrics unavailable\n",
            )
                .into_response()
        }
    }
}

/// Serves `/metrics` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    desk: Arc<Desk>,
    window_days: u32,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let router = axum::Router::new()
        .route("/metrics", get(metrics))
        .with_state(Arc::new(Gauges { desk, window_days }));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::PartnerRef;

    fn share(in_time: u64, late: u64, pending: u64) -> Share {
        Share {
            received: in_time + late + pending,
            resolved_in_time: in_time,
            late,
            pending,
            ..Share::default()
        }
    }

    #[test]
    fn the_exposition_has_the_ratio_overall_and_per_partner_and_tickets_by_status() {
        let report = Report {
            from: "2025-02-01T00:00:00Z".parse().unwrap(),
            to: "2025-03-03T00:00:00Z".parse().unwrap(),
            target_percent: 95.0,
            overall: share(2, 1, 1),
            per_partner: BTreeMap::from([
                (PartnerRef::idp("idp-a").unwrap(), share(2, 0, 0)),
                (PartnerRef::sp("sp-b").unwrap(), share(0, 1, 0)),
                // Nothing judged yet: no sample.
                (PartnerRef::sp("sp-c").unwrap(), share(0, 0, 1)),
            ]),
        };
        let tickets: Vec<(Status, i64)> = Status::ALL.into_iter().zip([3, 0, 1, 2, 7]).collect();
        let text = render(&report, 24, 30, &tickets);
        let expected = "\
# HELP relais_support_incidents_resolved_within_target_ratio Share of the operating incidents received in the last 30 days resolved within 24 business hours, among those judged.
# TYPE relais_support_incidents_resolved_within_target_ratio gauge
relais_support_incidents_resolved_within_target_ratio 0.6666666666666666
relais_support_incidents_resolved_within_target_ratio{partner=\"sp:sp-b\"} 0
relais_support_incidents_resolved_within_target_ratio{partner=\"idp:idp-a\"} 1
# HELP relais_support_incidents_target_ratio The target of relais_support_incidents_resolved_within_target_ratio.
# TYPE relais_support_incidents_target_ratio gauge
relais_support_incidents_target_ratio 0.95
# HELP relais_support_tickets Tickets by status.
# TYPE relais_support_tickets gauge
relais_support_tickets{status=\"open\"} 3
relais_support_tickets{status=\"in_progress\"} 0
relais_support_tickets{status=\"awaiting_partner\"} 1
relais_support_tickets{status=\"resolved\"} 2
relais_support_tickets{status=\"closed\"} 7
";
        assert_eq!(text, expected);
    }

    #[test]
    fn nothing_judged_no_ratio_and_labels_are_escaped() {
        let report = Report {
            from: "2025-02-01T00:00:00Z".parse().unwrap(),
            to: "2025-03-03T00:00:00Z".parse().unwrap(),
            target_percent: 90.0,
            overall: share(0, 0, 2),
            per_partner: BTreeMap::new(),
        };
        let text = render(&report, 24, 30, &[]);
        assert!(!text.lines().any(|l| l.starts_with(RATIO)));
        assert!(text.contains(&format!("{TARGET} 0.9\n")));
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
