use relais_bus::{BusConfig, BusError};

#[test]
fn the_defaults_are_valid_and_point_at_the_local_broker() {
    let config = BusConfig::default();
    config.validate().unwrap();
    assert_eq!(config.exchange, "relais.events");
    assert_eq!(config.url, "amqp://guest:guest@127.0.0.1:5672/%2f");
}

#[test]
fn unknown_fields_are_refused_and_missing_ones_defaulted() {
    let parsed: BusConfig = serde_json::from_str(r#"{"exchange": "x"}"#).unwrap();
    assert_eq!(parsed.exchange, "x");
    assert_eq!(parsed.relay_batch, BusConfig::default().relay_batch);
    assert!(serde_json::from_str::<BusConfig>(r#"{"exchnage": "x"}"#).is_err());
}

#[test]
fn validation_names_the_faulty_field() {
    let config = BusConfig {
        relay_batch: 0,
        ..BusConfig::default()
    };
    assert!(matches!(
        config.validate(),
        Err(BusError::Config {
            field: "relay_batch",
            ..
        })
    ));
    let config = BusConfig {
        url: "http://nope".to_owned(),
        ..BusConfig::default()
    };
    assert!(matches!(
        config.validate(),
        Err(BusError::Config { field: "url", .. })
    ));
}

#[test]
fn debug_output_hides_the_broker_password() {
    let config = BusConfig {
        url: "amqp://relais:s3cret@broker:5672/%2f".to_owned(),
        ..BusConfig::default()
    };
    let shown = format!("{config:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("relais:***@broker"), "{shown}");
}

#[test]
fn plain_amqp_off_this_machine_is_refused_unless_switched_on() {
    for url in [
        "amqp://relais:pw@broker.internal:5672/%2f",
        "amqp://relais:pw@10.0.0.5/%2f",
    ] {
        let config = BusConfig {
            url: url.to_owned(),
            ..BusConfig::default()
        };
        let err = config.validate().unwrap_err();
        assert!(
            matches!(&err, BusError::Config { field: "url", reason } if reason.contains("insecure_plaintext")),
            "{url}: {err}"
        );
        BusConfig {
            insecure_plaintext: true,
            ..config.clone()
        }
        .validate()
        .unwrap();
        BusConfig {
            url: url.replacen("amqp://", "amqps://", 1),
            ..config
        }
        .validate()
        .unwrap();
    }
    for url in [
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        "amqp://guest:guest@localhost/%2f",
    ] {
        BusConfig {
            url: url.to_owned(),
            ..BusConfig::default()
        }
        .validate()
        .unwrap();
    }
    // TLS files with a plain URL are a mistake, named.
    let err = BusConfig {
        ca_file: "/etc/relais/broker-ca.pem".into(),
        ..BusConfig::default()
    }
    .validate()
    .unwrap_err();
    assert!(
        matches!(
            err,
            BusError::Config {
                field: "ca_file",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn amqps_with_a_missing_or_bad_ca_file_is_refused_naming_it() {
    let dir = std::env::temp_dir().join(format!("relais-bus-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let amqps = |ca_file: &str, identity: &str| BusConfig {
        url: "amqps://relais:pw@broker.internal:5671/%2f".to_owned(),
        ca_file: ca_file.to_owned(),
        client_identity_file: identity.to_owned(),
        client_identity_password: "p12-secret".to_owned(),
        ..BusConfig::default()
    };
    let missing = dir.join("missing.pem").display().to_string();
    let config = amqps(&missing, "");
    config.validate().unwrap();
    let err = config.check_files().unwrap_err();
    assert!(
        matches!(&err, BusError::Config { field: "ca_file", reason } if reason.contains(&missing)),
        "{err}"
    );
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let err = amqps(&not_pem.display().to_string(), "")
        .check_files()
        .unwrap_err();
    assert!(
        matches!(
            err,
            BusError::Config {
                field: "ca_file",
                ..
            }
        ),
        "{err}"
    );
    let ca = dir.join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    amqps(&ca.display().to_string(), "").check_files().unwrap();
    let err = amqps(&ca.display().to_string(), &missing)
        .check_files()
        .unwrap_err();
    assert!(
        matches!(
            err,
            BusError::Config {
                field: "client_identity_file",
                ..
            }
        ),
        "{err}"
    );
    let shown = format!("{:?}", amqps(&missing, &missing));
    assert!(!shown.contains("p12-secret"), "{shown}");
    let _ = std::fs::remove_dir_all(&dir);
}
