//! The Kafka sink's refusal rules, security properties and per-record routing.

use super::*;
use crate::cut::decode::Format;
use crate::file::{FileId, FileIdentity};
use crate::source::{Origin, Source};
use std::collections::BTreeMap;

#[test]
fn refusals_are_the_errors_sending_again_cannot_fix() {
    let error = |code| KafkaError::MessageProduction(code);
    for code in [
        RDKafkaErrorCode::MessageSizeTooLarge,
        RDKafkaErrorCode::UnknownTopicOrPartition,
        RDKafkaErrorCode::TopicAuthorizationFailed,
        RDKafkaErrorCode::InvalidTopic,
    ] {
        assert!(refusal(&error(code)).is_some(), "{code:?}");
    }
    for code in [
        RDKafkaErrorCode::MessageTimedOut,
        RDKafkaErrorCode::BrokerTransportFailure,
        RDKafkaErrorCode::NotLeaderForPartition,
        RDKafkaErrorCode::QueueFull,
    ] {
        assert!(refusal(&error(code)).is_none(), "{code:?}");
    }
}

#[test]
fn tls_and_sasl_become_librdkafka_security_properties() {
    let config = |tls: Option<TlsSettings>, sasl: Option<SaslSettings>| KafkaSinkSettings {
        brokers: "b:9093".into(),
        topic: Template::parse("t").unwrap(),
        key: None,
        compression: KafkaCompression::Zstd,
        acks: "all".into(),
        linger: Duration::from_millis(5),
        batch_bytes: 1 << 20,
        dead_letter: None,
        properties: Default::default(),
        queue_bytes: 1 << 20,
        tls,
        sasl,
    };
    assert!(config(None, None).security_properties().is_empty());
    let tls = TlsSettings {
        ca_file: Some("/ca.pem".into()),
        cert_file: Some("/c.pem".into()),
        key_file: Some("/c.key".into()),
        verify: false,
    };
    let sasl = SaslSettings {
        mechanism: "SCRAM-SHA-256",
        username: "u".into(),
        password: "p4ss".into(),
    };
    let props: BTreeMap<_, _> = config(Some(tls.clone()), Some(sasl.clone()))
        .security_properties()
        .into_iter()
        .collect();
    assert_eq!(props["security.protocol"], "sasl_ssl");
    assert_eq!(props["ssl.ca.location"], "/ca.pem");
    assert_eq!(props["ssl.certificate.location"], "/c.pem");
    assert_eq!(props["ssl.key.location"], "/c.key");
    assert_eq!(props["enable.ssl.certificate.verification"], "false");
    assert_eq!(props["sasl.mechanism"], "SCRAM-SHA-256");
    assert_eq!(props["sasl.password"], "p4ss");
    assert!(
        !format!("{sasl:?}").contains("p4ss"),
        "Debug hides the password"
    );
    let only_sasl = config(None, Some(sasl)).security_properties();
    assert_eq!(
        only_sasl[0],
        ("security.protocol", "sasl_plaintext".to_string())
    );
    let only_tls = config(Some(tls), None).security_properties();
    assert_eq!(only_tls[0], ("security.protocol", "ssl".to_string()));
}

#[test]
fn topics_and_keys_come_from_each_records_file_and_stream() {
    let mut source = Source::new(0, "pods", Format::Cri);
    source.cut.max_line_bytes = 1024;
    let source = Arc::new(source);
    let path: std::path::PathBuf = "/var/log/pods/shop_web-1_uid/nginx/0.log".into();
    let file = FileCtx {
        id: FileId(1),
        identity: FileIdentity { dev: 7, ino: 9 },
        source,
        meta: Arc::new(crate::container::FileMeta {
            container: crate::container::of_path(&path),
            node: Some("node-1".into()),
        }),
        path,
    };
    let mut config = KafkaSinkSettings {
        brokers: "127.0.0.1:9092".to_string(),
        topic: Template::parse("logs-{k8s.namespace}-{stream}").unwrap(),
        key: None,
        compression: KafkaCompression::Zstd,
        acks: "all".to_string(),
        linger: Duration::from_millis(5),
        batch_bytes: 1 << 20,
        dead_letter: None,
        properties: Default::default(),
        queue_bytes: 64 << 20,
        tls: None,
        sasl: None,
    };
    let (topic, key) = render(&config, &file, Stream::Stderr);
    assert_eq!(topic, "logs-shop-stderr");
    assert_eq!(key.as_deref(), Some(&b"7:9"[..]), "the file's identity");
    // Field values a topic cannot hold become `_`; unknown fields render `unknown`.
    config.topic = Template::parse("x-{file}-{image}").unwrap();
    config.key = Some(Template::parse("{k8s.container}/{source}/{k8s.restart}/{node}").unwrap());
    let (topic, key) = render(&config, &file, Stream::Stdout);
    assert_eq!(topic, "x-_var_log_pods_shop_web-1_uid_nginx_0.log-unknown");
    assert_eq!(key.as_deref(), Some(&b"nginx/pods/0/node-1"[..]));
    // A container's declaration names its own topic (RINGTAIL_LOGS_<NAME>_TOPIC).
    let declared = FileCtx {
        source: Arc::new(Source {
            origin: Some(Arc::new(Origin {
                name: "ACCESS".into(),
                container_id: "c0ffee".into(),
                topic: Some("nginx-access".into()),
                root: None,
                meta: Arc::clone(&file.meta),
            })),
            ..(*file.source).clone()
        }),
        ..file.clone()
    };
    let (topic, key) = render(&config, &declared, Stream::Stdout);
    assert_eq!(topic, "nginx-access");
    assert_eq!(key.as_deref(), Some(&b"nginx/pods/0/node-1"[..]));
}
