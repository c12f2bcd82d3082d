//! Configuration checks, start-up failures and graceful shutdown.

use std::time::Duration;

use relais_gateway::{ForwardedHeader, GatewayConfig, GatewayError, TlsConfig};

use crate::support::{self, redirect};

type Edit = fn(&mut GatewayConfig);

fn invalid_field(config: &GatewayConfig) -> String {
    config.validate().unwrap_err().to_string()
}

#[test]
fn defaults_refuse_plain_http_until_asked() {
    let mut config = GatewayConfig::default();
    assert!(!config.allow_plain_http);
    assert!(invalid_field(&config).contains("gateway.tls"));
    config.allow_plain_http = true;
    config.validate().unwrap();
    assert_eq!(config.listen, "127.0.0.1:8000");
    assert_eq!(config.oidc_front_url, "http://127.0.0.1:7102");
    assert_eq!(config.max_body_bytes, 64 * 1024);
    assert!(config.trusted_proxies.is_empty());
    assert!(!config.proxy_protocol);
    assert_eq!(config.forwarded_header, ForwardedHeader::XForwardedFor);
    assert!(config.tls.is_none());
}

#[test]
fn validation_names_the_bad_field() {
    let mut c = GatewayConfig {
        allow_plain_http: false,
        ..GatewayConfig::default()
    };
    assert!(
        invalid_field(&c).contains("gateway.tls"),
        "{}",
        invalid_field(&c)
    );
    c.tls = Some(TlsConfig {
        cert_path: "cert.pem".into(),
        key_path: "".into(),
    });
    assert!(invalid_field(&c).contains("gateway.tls.key_path"));

    let cases: [(&str, Edit); 6] = [
        ("gateway.listen", |c| c.listen = "localhost".into()),
        ("gateway.public_url", |c| {
            c.public_url = "relais.example".into()
        }),
        ("gateway.oidc_front_url", |c| {
            c.oidc_front_url = "ftp://x".into()
        }),
        ("gateway.max_body_bytes", |c| c.max_body_bytes = 0),
        ("gateway.request_timeout_ms", |c| c.request_timeout_ms = 0),
        // Nobody could connect.
        ("gateway.proxy_protocol", |c| c.proxy_protocol = true),
    ];
    for (field, edit) in cases {
        let mut c = GatewayConfig::default();
        edit(&mut c);
        assert!(
            invalid_field(&c).contains(field),
            "{field}: {}",
            invalid_field(&c)
        );
    }
}

#[test]
fn parses_from_toml_and_refuses_unknown_fields() {
    let c: GatewayConfig = relais_config::from_toml_str(
        "public_url = \"https://relais.example\"\nallow_plain_http = false\n\
         [tls]\ncert_path = \"/etc/relais/cert.pem\"\nkey_path = \"/etc/relais/key.pem\"\n",
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(
        c.tls.unwrap().key_path.to_str(),
        Some("/etc/relais/key.pem")
    );
    assert_eq!(c.listen, "127.0.0.1:8000");
    let err = relais_config::from_toml_str::<GatewayConfig>("max_body_byte = 3").unwrap_err();
    assert!(err.to_string().contains("max_body_byte"), "{err}");
}

#[test]
fn trusted_proxies_are_networks_or_addresses_from_toml_or_the_environment() {
    let c: GatewayConfig = relais_config::from_toml_str(
        "allow_plain_http = true\nproxy_protocol = true\nforwarded_header = \"forwarded\"\n\
         trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"fd00::/8\", \"2001:db8::1\"]\n",
    )
    .unwrap();
    c.validate().unwrap();
    let nets: Vec<String> = c.trusted_proxies.iter().map(ToString::to_string).collect();
    assert_eq!(
        nets,
        ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8", "2001:db8::1/128"]
    );
    assert_eq!(c.forwarded_header, ForwardedHeader::Forwarded);
    let c: GatewayConfig = relais_config::load(
        None,
        [(
            "RELAIS__TRUSTED_PROXIES".to_string(),
            r#"["10.1.0.0/16", "::1"]"#.to_string(),
        )],
    )
    .unwrap();
    let nets: Vec<String> = c.trusted_proxies.iter().map(ToString::to_string).collect();
    assert_eq!(nets, ["10.1.0.0/16", "::1/128"]);
}

#[test]
fn a_bad_trusted_proxy_is_refused_naming_the_field() {
    for bad in ["10.0.0.0/33", "10.0.0.1/8", "0.0.0.0/0", "proxy.internal"] {
        let toml = format!("trusted_proxies = [\"10.0.0.0/8\", \"{bad}\"]");
        let err = relais_config::from_toml_str::<GatewayConfig>(&toml)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("trusted_proxies") && err.contains(bad),
            "{bad}: {err}"
        );
    }
    let err = relais_config::from_toml_str::<GatewayConfig>("forwarded_header = \"x-real-ip\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("forwarded_header"), "{err}");
    // Removed: it trusted the first hop, which any client writes.
    let err = relais_config::from_toml_str::<GatewayConfig>("trust_forwarded_for = true")
        .unwrap_err()
        .to_string();
    assert!(err.contains("trust_forwarded_for"), "{err}");
}

#[tokio::test]
async fn start_refuses_unreadable_tls_files() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = GatewayConfig {
        tls: Some(TlsConfig {
            cert_path: "/nonexistent/relais/cert.pem".into(),
            key_path: "/nonexistent/relais/key.pem".into(),
        }),
        ..GatewayConfig::default()
    };
    let channel = relais_runtime::grpc_channel("http://127.0.0.1:1").unwrap();
    let backends = relais_gateway::Backends {
        oidc_front: relais_proto::oidc_front::v1::oidc_front_client::OidcFrontClient::new(
            channel.clone(),
        ),
        support: relais_proto::support::v1::support_client::SupportClient::new(channel.clone()),
        trace: relais_proto::trace::v1::trace_client::TraceClient::new(channel),
    };
    let err = relais_gateway::start(config, listener, backends, Default::default())
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/relais/cert.pem"));
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish_then_stops() {
    let mut gw = support::start(|_| {}).await;
    gw.fake.answer_flow(redirect("https://sp.example/"));
    gw.fake.delay(Duration::from_millis(400));
    let url = gw.url("/authorize");
    let in_flight = tokio::spawn(async move { support::http().get(url).send().await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    gw.shutdown.cancel();
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 303);
    tokio::time::timeout(Duration::from_secs(5), gw.task.take().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(gw.addr).await.is_err());
}
