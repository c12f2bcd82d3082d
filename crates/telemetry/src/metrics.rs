//! The process's metrics, served at `/metrics` in the Prometheus text format when
//! `telemetry.metrics_listen` is set. Each service registers what it counts once, at
//! start, under a `relais_` name; counting is a lock-free atomic add.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
pub use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Counters told apart by labels: `family.get_or_create(&vec![("code".into(), code)])`.
/// Label only by values from a closed set (error codes, paths), never by user data.
pub type Counters = Family<Vec<(String, String)>, Counter>;

struct Metrics {
    registry: Registry,
    counters: HashMap<String, Counter>,
    families: HashMap<String, Counters>,
}

fn metrics_of_process() -> &'static Mutex<Metrics> {
    static METRICS: OnceLock<Mutex<Metrics>> = OnceLock::new();
    METRICS.get_or_init(|| {
        Mutex::new(Metrics {
            registry: Registry::with_prefix("relais"),
            counters: HashMap::new(),
            families: HashMap::new(),
        })
    })
}

/// The process's counter `relais_<name>_total`: the same one for every caller naming it
/// (two replicas of a service in one process count into one series). `help` ends
/// without a full stop: the exposition adds one.
pub fn counter(name: &str, help: &str) -> Counter {
    registered(name, help, |m| &mut m.counters)
}

/// The process's labelled counters `relais_<name>_total{…}`, one family per name.
pub fn counters(name: &str, help: &str) -> Counters {
    registered(name, help, |m| &mut m.families)
}

/// The metric registered under `name` in `kind`, registered on first use.
fn registered<M>(name: &str, help: &str, kind: fn(&mut Metrics) -> &mut HashMap<String, M>) -> M
where
    M: prometheus_client::registry::Metric + Clone + Default,
{
    let mut guard = metrics_of_process()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let m = &mut *guard;
    if let Some(found) = kind(m).get(name) {
        return found.clone();
    }
    let metric = M::default();
    m.registry.register(name, help, metric.clone());
    kind(m).insert(name.to_owned(), metric.clone());
    metric
}

/// The exposition of every metric of the process.
pub fn render() -> String {
    let mut out = String::new();
    let m = metrics_of_process()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if encode(&mut out, &m.registry).is_err() {
        out.clear();
    }
    out
}

/// `GET /metrics`.
pub fn router() -> axum::Router {
    axum::Router::new().route("/metrics", axum::routing::get(metrics))
}

async fn metrics() -> Response {
    let body = render();
    if body.is_empty() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable\n").into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_counter_shows_in_the_exposition_with_its_count() {
        let c = counter("test_things", "Things counted by the test");
        c.inc();
        // Named again, the same counter.
        counter("test_things", "Things counted by the test").inc();
        let text = render();
        assert!(
            text.contains("# HELP relais_test_things Things counted by the test."),
            "{text}"
        );
        assert!(!text.contains(".."), "{text}");
        assert!(text.contains("relais_test_things_total 2"), "{text}");
        assert_eq!(
            text.matches("# HELP relais_test_things ").count(),
            1,
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn labelled_counters_of_one_name_are_one_family() {
        let by_kind = counters("test_kinds", "Kinds counted by the test");
        by_kind
            .get_or_create(&vec![("kind".into(), "a".into())])
            .inc();
        counters("test_kinds", "Kinds counted by the test")
            .get_or_create(&vec![("kind".into(), "a".into())])
            .inc();
        let text = render();
        assert!(
            text.contains("relais_test_kinds_total{kind=\"a\"} 2"),
            "{text}"
        );
        assert_eq!(
            text.matches("# HELP relais_test_kinds ").count(),
            1,
            "{text}"
        );
    }
}
