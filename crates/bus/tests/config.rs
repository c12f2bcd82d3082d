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
