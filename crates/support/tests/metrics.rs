use std::net::SocketAddr;

use relais_support::SupportConfig;
use relais_support::domain::indicator::IndicatorConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{IDP, SP, Support, contact, paris, staff, text};

/// A plain HTTP/1.1 GET: the status code, the content type and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

/// The samples of the exposition, as (series, value), comments left out.
fn samples(body: &str) -> Vec<(String, String)> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn metrics_show_the_indicator_overall_and_per_partner_and_tickets_by_status() {
    let config = SupportConfig {
        metrics_listen: "127.0.0.1:0".into(),
        // One business hour: moving the clock a little makes an incident late.
        indicator: IndicatorConfig {
            resolution_business_hours: 1,
            target_percent: 95.0,
        },
        ..SupportConfig::default()
    };
    let mut support = Support::start_with(config).await;
    let addr = support.metrics.unwrap();

    // Monday 10:00: idp-a's incident is resolved at once, sp-b's is not, and an
    // information request does not count.
    let resolved = support
        .open(contact(IDP, "idp-a"), (IDP, "idp-a"), "all_partners", 0)
        .await;
    support
        .client
        .resolve(text(staff("level3"), &resolved.id, "Fixed"))
        .await
        .unwrap();
    support
        .open(contact(SP, "sp-b"), (SP, "sp-b"), "one_partner", 0)
        .await;
    support
        .open(contact(SP, "sp-b"), (SP, "sp-b"), "information_request", 0)
        .await;
    // 11:30: sp-b's incident is past its hour; idp-c's, just received, is not judged yet.
    support.clock.set(paris("2025-03-03T11:30"));
    support
        .open(contact(IDP, "idp-c"), (IDP, "idp-c"), "several_users", 0)
        .await;

    let (status, content_type, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(body.contains("# TYPE relais_support_incidents_resolved_within_target_ratio gauge\n"));
    let expected: Vec<(String, String)> = [
        (
            "relais_support_incidents_resolved_within_target_ratio",
            "0.5",
        ),
        (
            "relais_support_incidents_resolved_within_target_ratio{partner=\"sp:sp-b\"}",
            "0",
        ),
        (
            "relais_support_incidents_resolved_within_target_ratio{partner=\"idp:idp-a\"}",
            "1",
        ),
        ("relais_support_incidents_target_ratio", "0.95"),
        ("relais_support_tickets{status=\"open\"}", "3"),
        ("relais_support_tickets{status=\"in_progress\"}", "0"),
        ("relais_support_tickets{status=\"awaiting_partner\"}", "0"),
        ("relais_support_tickets{status=\"resolved\"}", "1"),
        ("relais_support_tickets{status=\"closed\"}", "0"),
    ]
    .map(|(s, v)| (s.to_owned(), v.to_owned()))
    .into();
    assert_eq!(samples(&body), expected, "{body}");

    let (status, _, _) = get(addr, "/other").await;
    assert_eq!(status, 404);
    support.stop().await;
}
